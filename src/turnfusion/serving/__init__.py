# SPDX-License-Identifier: Apache-2.0
"""Serving: the processor (the input policy), one predictor over a torch or ONNX backend, batch prediction and the ONNX
export."""
