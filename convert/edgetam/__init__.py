"""EdgeTAM, the second model family: the project's own RepViT-M1 encoder, spatial perceiver and v2 memory attention.

The rest of EdgeTAM (FPN neck, prompt encoder, mask decoder, memory encoder) is
SAM 2's and comes from the `sam2` package; see docs/export.md for why the three
EdgeTAM-only parts are written here instead of imported from the official code.
"""
