#!/usr/bin/env python3
"""ONNX Runtime's quantize_static with settings matching a quantbench config, for side-by-side
comparisons (accuracy of the written file, wall time, peak memory).

Feeds the exact inputs quantbench calibrates on: export them first with
`quantbench dataset show DATA --model MODEL --export calib.npy`.

Prints one JSON object: seconds inside quantize_static, peak resident memory of this process.
"""
import argparse
import json
import resource
import time

import numpy as np
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                      QuantType, quantize_static)


class NpyReader(CalibrationDataReader):
    def __init__(self, path, input_name, limit):
        data = np.load(path)
        if limit:
            data = data[:limit]
        self.samples = iter([{input_name: data[i:i + 1]} for i in range(len(data))])

    def get_next(self):
        return next(self.samples, None)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("calib_npy")
    p.add_argument("out")
    p.add_argument("--per-channel", action="store_true")
    p.add_argument("--calibration", default="minmax", help="minmax, percentile=P, entropy")
    p.add_argument("--symmetric-activations", action="store_true")
    p.add_argument("--activations", default="uint8", choices=["uint8", "int8"])
    p.add_argument("--samples", type=int, default=0)
    args = p.parse_args()

    import onnx
    input_name = [i.name for i in onnx.load(args.model).graph.input][0]
    extra = {"ActivationSymmetric": args.symmetric_activations, "WeightSymmetric": True}
    method = CalibrationMethod.MinMax
    if args.calibration.startswith("percentile"):
        method = CalibrationMethod.Percentile
        if "=" in args.calibration:
            extra["CalibPercentile"] = float(args.calibration.split("=")[1])
    elif args.calibration == "entropy":
        method = CalibrationMethod.Entropy
    elif args.calibration != "minmax":
        raise SystemExit(f"unsupported calibration {args.calibration}")

    start = time.perf_counter()
    quantize_static(
        args.model,
        args.out,
        NpyReader(args.calib_npy, input_name, args.samples),
        quant_format=QuantFormat.QDQ,
        per_channel=args.per_channel,
        activation_type=QuantType.QUInt8 if args.activations == "uint8" else QuantType.QInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=method,
        extra_options=extra,
    )
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"seconds": seconds, "peak_rss_bytes": peak}))


if __name__ == "__main__":
    main()
