"""tinysplit.server: the server half of a split deployment (CoAP, COSE, onnxruntime). See README.md."""
