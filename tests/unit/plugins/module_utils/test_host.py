"""AnsibleHost: each case is the calls an engine makes and the programs that really run."""

from ansible_collections.netmagic.netfilter.plugins.module_utils._host import AnsibleHost


class CountingModule:
    """run_command of AnsibleModule, answering each argv with the number of times it ran."""

    def __init__(self):
        self.ran = []

    def run_command(self, argv, data=None, **_options):
        self.ran.append(list(argv))
        return 0, "run %d" % len(self.ran), ""


def test_a_read_runs_once_until_a_write():
    module = CountingModule()
    host = AnsibleHost(module)
    answers = [host.read(["iptables-nft-save"]), host.read(["iptables-nft-save"]), host.read(["nft", "list", "tables"])]
    host.run(["iptables-nft-restore", "--noflush"], data="*nat\nCOMMIT\n")
    answers.append(host.read(["iptables-nft-save"]))
    assert [answer[1] for answer in answers] == ["run 1", "run 1", "run 2", "run 4"]
    assert module.ran == [["iptables-nft-save"], ["nft", "list", "tables"], ["iptables-nft-restore", "--noflush"], ["iptables-nft-save"]]


def test_a_change_made_without_a_program_is_forgotten_too():
    module = CountingModule()
    host = AnsibleHost(module)
    host.read(["iptables-legacy-save"])
    host.forget_reads()
    assert host.read(["iptables-legacy-save"])[1] == "run 2"
