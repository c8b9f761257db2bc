"""An emulator of tensorflow_model_server (ModelService + PredictionService over gRPC), run as its own process.

`python -m bot.devstack.serving --help` lists the flags. Behaviour follows shared/reference/tfserving.md, which was
written from TF Serving's source; module names mirror the upstream classes they imitate.
"""
