"""Running a .tflite from its bytes, for the exporters' own checks (calibration, float
fallback) and tests: one module that tflite.py and those checks import, so none of
them imports another that imports it back."""

from __future__ import annotations

import numpy as np

from exporters.quiet import silenced


def predict_tflite(content: bytes, images: np.ndarray) -> np.ndarray:
    """Run a batch-1 .tflite over float32 images; quantize in and dequantize out."""
    from ai_edge_litert.interpreter import Interpreter

    with silenced():  # LiteRT announces its XNNPACK delegate on stderr
        interpreter = Interpreter(model_content=content)
        interpreter.allocate_tensors()
    (inp,) = interpreter.get_input_details()
    (out,) = interpreter.get_output_details()
    in_scale, in_zero = inp["quantization"]
    out_scale, out_zero = out["quantization"]
    rows = []
    for image in np.asarray(images, dtype=np.float32):
        x = image[np.newaxis]
        if np.dtype(inp["dtype"]) != np.float32:
            info = np.iinfo(inp["dtype"])
            x = np.clip(np.round(x / in_scale + in_zero), info.min, info.max)
        interpreter.set_tensor(inp["index"], x.astype(inp["dtype"]))
        interpreter.invoke()
        y = interpreter.get_tensor(out["index"]).astype(np.float32)
        if np.dtype(out["dtype"]) != np.float32:
            y = (y - out_zero) * out_scale
        rows.append(y[0])
    return np.stack(rows).astype(np.float32)
