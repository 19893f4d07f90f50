# SPDX-License-Identifier: Apache-2.0
"""Live use: the streaming session and the pipecat and LiveKit adapters (Apache-2.0, numpy and onnxruntime only)."""
