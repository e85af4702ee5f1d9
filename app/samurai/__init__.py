"""SAMURAI's algorithm: SAM 2.1's per-frame stages, the memory bank, the Kalman filter and motion-aware selection.

It takes arrays and returns results: no threads, sockets, windows or frame
sources. Sub-models run behind `acl_models.base.ModelRunner`, so this package
never knows which runtime executes them. A port to another runtime reads this
package first.
"""
