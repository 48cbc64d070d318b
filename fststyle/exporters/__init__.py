"""The exported file formats (ONNX, TorchScript, the phone formats) and the browser page, written by the
``export`` command."""
