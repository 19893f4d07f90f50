"""Stage `source`: write the utterance table and the download manifest of the chosen data source."""

import argparse

from stages.common import config, run
from turnfusion.config import CallsConfig, DataConfig, DemoConfig, Mmf2fConfig
from turnfusion.data.sources import write_source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    write_source(args.out, config(DataConfig), config(DemoConfig), config(Mmf2fConfig), config(CallsConfig))


if __name__ == "__main__":
    run(main)
