"""SNN inference time against the dense limit, a per-step loop and SpikingJelly, in one paired run."""
import cqlearn as cq
import nets
import timing

GOAL_DENSE = 1.25  # ours / dense limit


def _check(r, name):
    return f"median ratio of {r['repeats']} rounds {r['median ratio:' + name]:.2f}"


def compare(name, timesteps, batch=16, encoding="spikes", repeats=5, spikingjelly=True):
    """Rows comparing cq.convert(...).run(x) with each baseline on the same network and images."""
    model, x, source = nets.network(name, batch)
    snn = cq.convert(model, timesteps, encoding)
    dense = nets.dense_limit(model, snn, x)
    window = cq.memory.plan(snn, x).window
    baselines = {**dense, "synapses": nets.synapse_floor(snn, x, window),
                 "per-step loop": nets.per_step_loop(snn, x)}
    why_not = None
    if spikingjelly:
        try:
            baselines["SpikingJelly"] = nets.spikingjelly(snn, x)
            baselines["SpikingJelly"]()
        except Exception as error:  # noqa: BLE001 - the reason goes into the table
            baselines.pop("SpikingJelly", None)
            why_not = f"{type(error).__name__}: {error}"[:160]
    r = timing.paired(lambda: snn.run(x), baselines, repeats=repeats)
    case = f"{name}, T = {timesteps}, B = {batch}, {encoding} encoding"
    limit_name, limit = timing.best_of({k: r[k] for k in dense})
    other = [k for k in dense if k != limit_name][0]
    rows = [{
        "case": f"SNN inference vs dense limit: {case}",
        "ours": timing.ms(r["ours"]), "baseline": timing.ms(limit), "ratio": r["ratio:" + limit_name],
        "goal": f"<= {GOAL_DENSE}", "met": r["ratio:" + limit_name] <= GOAL_DENSE,
        "note": (f"dense limit = {limit_name} (the other, {other}, took {timing.ms(r[other])}); "
                 f"ours ran {window}-step windows; {source}; {_check(r, limit_name)}"),
    }, {
        "case": f"SNN inference vs the synapses alone (no neurons): {case}",
        "ours": timing.ms(r["ours"]), "baseline": timing.ms(r["synapses"]), "ratio": r["ratio:synapses"],
        "goal": "-", "met": None,
        "note": (f"information: the Conv2d/AvgPool2d calls of our {window}-step windows without the IF neurons; "
                 f"{_check(r, 'synapses')}"),
    }, {
        "case": f"SNN inference vs per-step loop: {case}",
        "ours": timing.ms(r["ours"]), "baseline": timing.ms(r["per-step loop"]), "ratio": r["ratio:per-step loop"],
        "goal": "< 1", "met": r["ratio:per-step loop"] < 1,
        "note": f"every step through the whole network; {_check(r, 'per-step loop')}",
    }]
    if spikingjelly:
        version = nets.spikingjelly_version()
        if "SpikingJelly" in r:
            rows.append({
                "case": f"SNN inference vs SpikingJelly: {case}",
                "ours": timing.ms(r["ours"]), "baseline": timing.ms(r["SpikingJelly"]),
                "ratio": r["ratio:SpikingJelly"], "goal": "<= 1", "met": r["ratio:SpikingJelly"] <= 1,
                "note": (f"spikingjelly {version}, multi-step IFNode (soft reset), SeqToANNContainer synapses; "
                         f"{_check(r, 'SpikingJelly')}"),
            })
        else:
            reason = why_not if version else "spikingjelly is not installed (pip install spikingjelly --no-deps)"
            rows.append({"case": f"SNN inference vs SpikingJelly: {case}", "ours": timing.ms(r["ours"]),
                         "baseline": "-", "ratio": None, "goal": "<= 1", "met": None,
                         "note": f"not run: {reason}"})
    return rows


GOAL_SIGNED = 1.3  # signed neurons / IF neurons, same network and input


def compare_neurons(name, timesteps, batch=16, encoding="spikes", repeats=5):
    """A row: the signed neuron's simulation against the IF neuron's on the same network and images."""
    model, x, source = nets.network(name, batch)
    signed, plain = (cq.convert(model, timesteps, encoding, neuron=n) for n in ("signed", "if"))
    r = timing.paired(lambda: signed.run(x), {"if": lambda: plain.run(x)}, repeats=repeats)
    return [{
        "case": f"Signed neurons vs IF neurons: {name}, T = {timesteps}, B = {batch}, {encoding} encoding",
        "ours": timing.ms(r["ours"]), "baseline": timing.ms(r["if"]), "ratio": r["ratio:if"],
        "goal": f"<= {GOAL_SIGNED}", "met": r["ratio:if"] <= GOAL_SIGNED,
        "note": (f"the same synapse calls; the signed step adds a comparison with 0, the count test and the count "
                 f"update per neuron and step; {source}; {_check(r, 'if')}"),
    }]
