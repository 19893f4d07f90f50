"""The parity stage: PyTorch on raw inputs against the exported graphs, and the telephone band."""

import numpy as np


def test_deployment_rows_compare_pytorch_onnx_and_the_telephone_band(tmp_path):
    from conftest import params_config
    from pipeline import build

    from turnfusion.audio import telephone
    from turnfusion.config import TrainConfig
    from turnfusion.evaluation.parity import deployment
    from turnfusion.serving.export import export
    from turnfusion.serving.predict import load_model

    pipe = build(tmp_path / "p")
    export(pipe.model_dir, tmp_path / "onnx")
    rows = deployment(load_model(pipe.model_dir)[0], tmp_path / "onnx", pipe.table, pipe.tokens, pipe.store,
                      params_config(TrainConfig, device="cpu", batch_size=4))
    assert set(rows) == {"pytorch", "onnx_fp32", "onnx_int8", "telephony"}
    assert rows["onnx_fp32"]["max_abs_dp"] < 1e-4 and rows["onnx_fp32"]["agreement"] == 1.0
    assert rows["onnx_fp32"]["macro_f1_delta"] == 0.0
    assert 0 < rows["onnx_int8"]["max_abs_dp"] < 0.2  # quantisation moves the probabilities, a little
    assert rows["telephony"]["macro_f1_drop"] == rows["onnx_fp32"]["macro_f1"] - rows["telephony"]["macro_f1"]
    wave = pipe.store.waveform(0)
    spectrum = np.abs(np.fft.rfft(telephone(wave, 16000, mu_law=False)))
    high = spectrum[len(spectrum) // 2:]  # above 4 kHz: gone
    assert high.max() < 1e-2 * np.abs(np.fft.rfft(wave)).max()
    # PyTorch and the graphs at once, in two processes of one thread: the same comparison
    forked = deployment(load_model(pipe.model_dir)[0], tmp_path / "onnx", pipe.table, pipe.tokens, pipe.store,
                        params_config(TrainConfig, device="cpu", batch_size=4), workers=2)
    for name, row in rows.items():
        assert forked[name]["macro_f1"] == row["macro_f1"]
        if "max_abs_dp" in row:
            assert abs(forked[name]["max_abs_dp"] - row["max_abs_dp"]) < 1e-5


def test_the_parity_headline_keeps_the_int8_deltas_and_the_telephone_drop():
    from turnfusion.evaluation.parity import headline

    rows = {"pytorch": {"macro_f1": 0.8}, "onnx_int8": {"max_abs_dp": 0.01861, "agreement": 0.99, "macro_f1": 0.8},
            "telephony": {"macro_f1": 0.8, "macro_f1_drop": -0.00251}}
    assert headline(rows) == {"int8_max_dp": 0.0186, "int8_agreement": 0.99, "telephony_f1_drop": -0.0025}
    del rows["telephony"]  # a model without audio
    assert headline(rows) == {"int8_max_dp": 0.0186, "int8_agreement": 0.99}
