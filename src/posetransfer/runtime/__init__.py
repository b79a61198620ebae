"""Running generators: loading any model (`load_generator`), the inference paths (fast torch,
onnxruntime, OpenVINO) and writing the ONNX graphs the exported paths run.
"""
