"""Frames in and results out: video files, frame folders, cameras and network streams; boxes, masks, video and summaries on disk; prompts from the command line."""
