"""Where a QDQ model quantizes: activation QuantizeLinear nodes by the op producing their input,
and the ops their DequantizeLinear feeds. For comparing two tools' files of one model.

    target/py/bin/python3 benches/qdq_census.py A.onnx B.onnx
"""
import sys, onnx, collections
for path in sys.argv[1:]:
    m = onnx.load(path); g = m.graph
    prod = {o: n for n in g.node for o in n.output}
    cons = collections.defaultdict(list)
    for n in g.node:
        for i in n.input: cons[i].append(n)
    inits = {t.name for t in g.initializer}
    c = collections.Counter(); d = collections.Counter()
    for n in g.node:
        if n.op_type == "QuantizeLinear" and n.input[0] not in inits:
            p = prod.get(n.input[0]); c[p.op_type if p else "input"] += 1
            # consumers of the DQ after it
            for q in cons[n.output[0]]:
                for k in cons[q.output[0]]: d[k.op_type] += 1
    print(path, "activation Q by producer:", dict(c)); print("   feeding:", dict(d))
