"""Every runtime that runs the exported sub-models, and the model bundle they are opened as: the bottom layer.

The name is the mission's (the project began as SAMURAI on Ascend's pyACL); the package holds all the backends
behind one interface (`base.py`): pyACL on an Ascend NPU (`acl_runner.py`, on the
device of `acl_device.py`), ONNX Runtime (`onnx_runner.py`),
OpenVINO (`openvino_runner.py`) and the replays of recorded outputs (`replay_runner.py`). `select.py` says which
runs here, `manifest.py` reads an exported folder and `bundle.py` opens it: `open_bundle` returns the manifest,
constants and runners a tracker takes. Nothing here imports the rest of the project.
"""
