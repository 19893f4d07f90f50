"""Stage `source`: write the utterance table and the download manifest of the chosen data source."""

import argparse

from common import params, run

from turnfusion.corpus import write_demo_corpus
from turnfusion.schema import DataError
from turnfusion.sources import import_mmf2f


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    p = params("data")
    if p["source"] == "demo":
        d = params("demo")
        write_demo_corpus(args.out, d["n_conversations"], d["utterances_per_conversation"], p["seed"],
                          d["sample_rate"], d["stereo_fraction"], d["snr_db"], d["n_silent"], d["n_corrupt"],
                          d["n_empty"])
    elif p["source"] == "mmf2f":
        import_mmf2f(params("mmf2f")["annotations"], args.out)
    else:
        raise DataError(f"params.yaml: data.source must be 'demo' or 'mmf2f', got {p['source']!r}")


if __name__ == "__main__":
    run(main)
