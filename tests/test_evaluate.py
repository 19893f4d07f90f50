import numpy as np
import pandas as pd

from turnfusion.evaluate import (
    fit_trp_threshold,
    majority_baseline,
    per_class_f1_frame,
    predictions_frame,
    save_figures,
    trp_baseline,
)
from turnfusion.metrics import classification_report
from turnfusion.schema import KEEP, SHIFT


def test_majority_and_trp_baselines():
    probs = majority_baseline(np.array([0, 1, 1, 2]), 3)
    assert probs.argmax(1).tolist() == [1, 1, 1] and probs.sum(1).tolist() == [1, 1, 1]
    trp = np.array([0.1, 0.2, 0.7, 0.9, 0.15, 0.8])
    labels = np.array([KEEP, KEEP, SHIFT, SHIFT, KEEP, SHIFT])
    threshold = fit_trp_threshold(trp, labels)
    assert 0.2 <= threshold < 0.7
    assert trp_baseline(trp, threshold).argmax(1).tolist() == labels.tolist()


def test_figures_are_valid_non_empty_pngs(tmp_path):
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"sentence_id": [f"s{i}" for i in range(30)], "video_id": "v",
                          "label": rng.integers(0, 3, 30)})
    probs = {"text": rng.dirichlet([1, 1, 1], 30), "fusion": rng.dirichlet([1, 1, 1], 30)}
    predictions = pd.concat([predictions_frame(table, p, name) for name, p in probs.items()])
    fusion = predictions[predictions.model == "fusion"]
    assert fusion.prediction.tolist() == probs["fusion"].argmax(1).tolist()
    assert fusion.sentence_id.tolist() == table.sentence_id.tolist() and len(predictions) == 60
    reports = {name: classification_report(table.label.to_numpy(), p.argmax(1), p) for name, p in probs.items()}
    paths = save_figures(predictions, reports, tmp_path, "fusion")
    for path in paths:
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    f1 = per_class_f1_frame(reports)
    assert len(f1) == 6 and f1.f1.between(0, 1).all()
