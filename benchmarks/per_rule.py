"""The usual alternative: ansible.builtin.iptables with one module call per chain and per rule.

The same chains and rules as the collection writes, minus what ansible.builtin.iptables cannot
express: it has no statistic match (so the service chain jumps to every endpoint chain
unconditionally and the first one takes every connection) and no --ctorigdst/--ctorigdstport
(so the masquerade jump matches every DNATed TCP connection). It calls the `iptables` command,
which is iptables-nft on this machine.
"""

import json
import os
import subprocess
import tempfile

from benchmarks import collection
from benchmarks.workload import COLLECTOR, VIP

PLAYBOOK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "per_rule.yml")
BIN = os.path.join(collection.REPO, ".venv", "bin")


def _service(workload, number):
    name = workload.service_name(number)
    svc = collection.chain_name("SVC", "balancer", name)
    masq = collection.chain_name("MASQ", "balancer", name)
    seps = [collection.chain_name("SEP", "balancer", name, i) for i in range(workload.backends)]
    comment = collection.tag("balancer", name)
    port = str(workload.service_port(number))
    chains = [svc, masq, *seps]
    rules = [{"chain": sep, "protocol": "tcp", "jump": "DNAT", "to_destination": endpoint}
             for sep, endpoint in zip(seps, workload.endpoint_list(number))]
    rules += [{"chain": svc, "jump": sep} for sep in seps]
    rules.append({"chain": masq, "jump": "MASQUERADE"})
    rules += [{"chain": hook, "destination": VIP + "/32", "protocol": "tcp", "destination_port": port,
               "comment": comment, "jump": svc} for hook in ("PREROUTING", "OUTPUT")]
    rules.append({"chain": "POSTROUTING", "protocol": "tcp", "ctstate": ["DNAT"], "comment": comment, "jump": masq})
    return [{"table": "nat", "chain": c} for c in chains], [dict(rule, table="nat") for rule in rules]


def _mirror(workload, number):
    name = workload.mirror_name(number)
    out, into = collection.chain_name("MIRO", "mirror", name), collection.chain_name("MIRI", "mirror", name)
    port, comment = str(workload.mirror_port(number)), collection.tag("mirror", name)
    rules = [{"chain": out, "protocol": "tcp", "destination_port": port, "jump": "TEE", "gateway": COLLECTOR},
             {"chain": into, "protocol": "tcp", "source_port": port, "jump": "TEE", "gateway": COLLECTOR},
             {"chain": "OUTPUT", "comment": comment, "jump": out},
             {"chain": "PREROUTING", "comment": comment, "jump": into}]
    return [{"table": "mangle", "chain": c} for c in (out, into)], [dict(rule, table="mangle") for rule in rules]


def definition(workload):
    """(chains, rules) in creation order: a chain's rules before the jumps into it."""
    chains, rules = [], []
    parts = [_mirror(workload, m) for m in range(workload.mirrors)] + [_service(workload, s) for s in range(workload.services)]
    for part_chains, part_rules in parts:
        chains += part_chains
        rules += part_rules
    return chains, rules


def calls(workload):
    """Module calls one apply makes: one per chain and one per rule."""
    chains, rules = definition(workload)
    return len(chains) + len(rules)


def _changed(workload, rules):
    """The whole playbook again, with service 0's first backend replaced: old rule absent, new present."""
    first = next(i for i, rule in enumerate(rules) if rule.get("jump") == "DNAT")
    old = dict(rules[first], state="absent")
    new = dict(rules[first], to_destination=workload.replacement_endpoint())
    return rules[:first] + [old, new] + rules[first + 1:]


def step_vars(workload, step):
    chains, rules = definition(workload)
    if step in ("apply", "noop"):
        return {"rule_state": "present", "chains": chains, "rules": rules}
    if step == "change":
        return {"rule_state": "present", "chains": chains, "rules": _changed(workload, rules)}
    # Removal goes backwards: jumps into a chain before its rules, rules before the chain.
    return {"rule_state": "absent", "chains": chains[::-1], "rules": _changed(workload, rules)[::-1]}


def run_step(netns, workload, step, timeout):
    """ansible-playbook against the namespace through the netns connection."""
    with tempfile.NamedTemporaryFile("w", suffix=".json") as extra:
        json.dump(step_vars(workload, step), extra)
        extra.flush()
        argv = [os.path.join(BIN, "ansible-playbook"), "-i", netns + ",", "-c", "netmagic.netfilter.netns",
                "-e", "ansible_python_interpreter=" + os.path.join(BIN, "python"), "-e", "@" + extra.name, PLAYBOOK]
        completed = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False,
                                   env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_PIPELINING="1"))
    if completed.returncode != 0:
        raise RuntimeError("per-rule playbook (%s) failed: %s" % (step, completed.stdout[-3000:] + completed.stderr[-2000:]))
    return completed
