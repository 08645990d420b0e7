"""A host for the engines without root: the iptables tools of both backends simulated over
in-memory tables, strict where the real tools are (a chain deleted while it has rules or a
jump into it, a rule deleted that is not there, a jump to a chain that does not exist), and
every program run recorded. nft is absent, so engine auto picks an iptables backend. `ip`
answers from the host's addresses and the gateways it reaches through a router.
"""

import copy
import re

BUILT_IN = {"nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
            "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")}
TOOL = re.compile(r"(ip6?tables)-(nft|legacy)-(save|restore)")
TARGET = re.compile(r" -[jg] (\S+)")
BOOT_ID = "0b6a2ef4-2f1c-4c55-9d43-6a1f3c8e2d10"
# Where legacy x_tables names the tables it has set up, per family.
LEGACY_TABLE_NAMES = {"/proc/net/ip_tables_names": 4, "/proc/net/ip6_tables_names": 6}


class RestoreError(Exception):
    pass


class SimulatedHost:
    """{(variant, family): {table: {chain: [rule lines]}}}; tools as the engines call them."""

    def __init__(self, version="nf_tables", missing=()):
        self.kernel = {(variant, family): {} for variant in ("nft", "legacy") for family in (4, 6)}
        self.version = version
        self.missing = set(missing)
        self.ran = []
        self.refused = set()  # (variant, family) whose restores fail, as a kernel without an extension would
        self.addresses = ["198.18.0.11/24", "2001:2::11/64"]
        self.generation = 1  # nf_tables' ruleset generation: the nft variant's commits advance it
        self.routed = {}  # destination -> the router `ip route get` goes via
        self.links = {"eth0": "BROADCAST,MULTICAST,UP,LOWER_UP"}  # interface -> its flags

    # --- what the engines call ---------------------------------------------------------

    def which(self, name):
        known = TOOL.fullmatch(name) or name in ("iptables", "unshare", "ip")
        return "/usr/sbin/" + name if known and name not in self.missing else None

    def read(self, argv):
        return self.run(argv)

    def forget_reads(self):
        """Nothing is cached."""

    def read_text(self, path):
        if path == "/proc/sys/kernel/random/boot_id":
            return BOOT_ID + "\n"
        family = LEGACY_TABLE_NAMES.get(path)
        return None if family is None else "".join(table + "\n" for table in self.kernel[("legacy", family)])

    def ruleset_generation(self):
        return self.generation

    def ruleset_tables(self):
        """The nf_tables tables: those iptables-nft has written (it never deletes one)."""
        return {("ip" if family == 4 else "ip6", table) for family in (4, 6) for table in self.kernel[("nft", family)]}

    def run(self, argv, data=None):
        name = argv[0].rsplit("/", 1)[1]
        self.ran.append([name] + argv[1:])
        if name == "iptables":
            return 0, "iptables v1.8.9 (%s)\n" % self.version, ""
        if name == "ip":
            return self._ip(argv[1:])
        family_tool, variant, verb = TOOL.fullmatch(name).groups()
        tables = self.kernel[(variant, 4 if family_tool == "iptables" else 6)]
        if verb == "save":
            return 0, save_text(tables), ""
        try:
            if (variant, 4 if family_tool == "iptables" else 6) in self.refused:
                raise RestoreError("line 2 failed: No chain/target/match by that name")
            restored = restore(tables, data)
        except RestoreError as error:
            return 1, "", "%s: %s\n" % (name, error)
        if "--test" not in argv:
            tables.clear()
            tables.update(restored)
            if variant == "nft":
                self.generation += data.count("\nCOMMIT\n")
        return 0, "", ""

    def _ip(self, args):
        if args[:4] == ["-o", "link", "show", "dev"]:
            if args[4] not in self.links:
                return 1, "", 'Device "%s" does not exist.\n' % args[4]
            return 0, "5: %s: <%s> mtu 1500 qdisc noqueue state UNKNOWN mode DEFAULT\n" % (args[4], self.links[args[4]]), ""
        destination, device = args[2], args[4] if args[3:4] == ["oif"] else "eth0"
        if destination in (address.split("/", maxsplit=1)[0] for address in self.addresses):
            return 0, "local %s dev lo src %s uid 0\n" % (destination, destination), ""
        via = " via %s" % self.routed[destination] if destination in self.routed else ""
        return 0, "%s%s dev %s src 198.18.0.11 uid 0\n" % (destination, via, device), ""

    # --- for tests ---------------------------------------------------------------------

    def rules(self, variant="nft", family=4):
        """Every rule line of one backend and family, as iptables-save prints them."""
        return [line for line in save_text(self.kernel[(variant, family)]).splitlines() if line.startswith("-A ")]

    def plant(self, variant, family, table, chain, line):
        """A rule of someone else's, at the end of a chain (created when missing): a commit like any other."""
        self._table(variant, family, table).setdefault(chain, []).append(line)
        if variant == "nft":
            self.generation += 1

    def reads(self):
        return [argv for argv in self.ran if argv[0].endswith("-save")]

    def writes(self):
        return [argv for argv in self.ran if argv[0].endswith("-restore")]

    def _table(self, variant, family, table):
        return self.kernel[(variant, family)].setdefault(table, {chain: [] for chain in BUILT_IN[table]})


def save_text(tables):
    out = []
    for table, chains in tables.items():
        out.append("*%s" % table)
        out += [":%s %s [0:0]" % (chain, "ACCEPT" if chain in BUILT_IN[table] else "-") for chain in chains]
        out += [line for lines in chains.values() for line in lines]
        out.append("COMMIT")
    return "".join(line + "\n" for line in out)


def restore(tables, buffer):
    """The tables after iptables-restore --noflush of buffer, each table committed whole."""
    tables = copy.deepcopy(tables)
    chains = None
    for number, line in enumerate((buffer or "").splitlines(), 1):
        try:
            if line.startswith("*"):
                working = copy.deepcopy(tables.get(line[1:]) or {chain: [] for chain in BUILT_IN[line[1:]]})
                name, chains = line[1:], working
            elif line == "COMMIT":
                _check_targets(chains)
                tables[name], chains = chains, None
            else:
                _restore_line(chains, line)
        except (RestoreError, KeyError) as error:
            raise RestoreError("line %d failed: %s" % (number, error)) from None
    return tables


def _restore_line(chains, line):
    verb, rest = line.split(" ", 1) if " " in line else (line, "")
    if line.startswith(":"):
        chains[line[1:].split(" ", 1)[0]] = []  # --noflush still flushes a declared chain
    elif verb == "-A":
        chain, spec = rest.split(" ", 1)
        chains[chain].append("-A %s %s" % (chain, spec))
    elif verb == "-I":
        chain, _position, spec = rest.split(" ", 2)
        chains[chain].insert(0, "-A %s %s" % (chain, spec))
    elif verb == "-D":
        chain, spec = rest.split(" ", 1)
        if "-A %s %s" % (chain, spec) not in chains[chain]:
            raise RestoreError("Bad rule (does a matching rule exist in that chain?)")
        chains[chain].remove("-A %s %s" % (chain, spec))
    elif verb == "-X":
        if chains[rest] or any(rest in TARGET.findall(rule) for lines in chains.values() for rule in lines):
            raise RestoreError("Directory not empty or chain in use: %s" % rest)
        del chains[rest]
    else:
        raise RestoreError("unknown line %r" % line)


def _check_targets(chains):
    for lines in chains.values():
        for line in lines:
            for target in TARGET.findall(line):
                if target.startswith("NM-") and target not in chains:
                    raise RestoreError("Couldn't load target `%s'" % target)
