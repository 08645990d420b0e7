"""The workload at one size: S balanced services of B backends each, plus M mirrors.

Addresses are in 198.18.0.0/15 and are never reached: the control-plane runs only write
rules into a namespace of their own that has no interfaces but loopback.
"""

from dataclasses import dataclass

VIP = "198.18.254.1"
FIRST_SERVICE_PORT = 10000
BACKEND_PORT = 8080
COLLECTOR = "198.18.253.12"
FIRST_MIRROR_PORT = 20000


def backend_address(index):
    """Endpoint number index as an address in 198.19.0.0/16 (250 per /24)."""
    return "198.19.%d.%d" % (index // 250, index % 250 + 1)


@dataclass(frozen=True)
class Workload:
    services: int
    backends: int
    mirrors: int

    @classmethod
    def parse(cls, text, mirrors):
        """'SxB' as given on the command line."""
        services, backends = (int(part) for part in text.lower().split("x"))
        if services < 1 or backends < 1:
            raise ValueError("sizes are SxB with S, B >= 1, not %r" % text)
        return cls(services, backends, mirrors)

    @property
    def label(self):
        return "%dx%d" % (self.services, self.backends)

    @property
    def endpoints(self):
        return self.services * self.backends

    def service_name(self, number):
        return "svc%05d" % number

    def mirror_name(self, number):
        return "mir%03d" % number

    def service_port(self, number):
        return FIRST_SERVICE_PORT + number

    def endpoint_list(self, number):
        """Backends of one service as 'ADDRESS:PORT'."""
        first = number * self.backends
        return ["%s:%d" % (backend_address(first + i), BACKEND_PORT) for i in range(self.backends)]

    def replacement_endpoint(self):
        """An endpoint no service has: the 'change one backend' step swaps it in."""
        return "%s:%d" % (backend_address(self.endpoints), BACKEND_PORT)

    def mirror_port(self, number):
        return FIRST_MIRROR_PORT + number

    # --- module arguments ----------------------------------------------------

    def service_args(self, number, backends=None):
        return {"name": self.service_name(number), "vip": VIP, "port": self.service_port(number),
                "backends": backends or self.endpoint_list(number)}

    def changed_service_args(self):
        """Service 0 with its first backend replaced."""
        return self.service_args(0, [self.replacement_endpoint()] + self.endpoint_list(0)[1:])

    def mirror_args(self, number):
        return {"name": self.mirror_name(number), "gateway": COLLECTOR, "ports": [str(self.mirror_port(number))]}

    def module_calls(self):
        """(module, args) for every object: mirrors first, as site.yml orders them."""
        calls = [("tee_mirror", self.mirror_args(m)) for m in range(self.mirrors)]
        calls += [("dnat_balancer", self.service_args(s)) for s in range(self.services)]
        return calls

    def listed_args(self, changed=False, state="present"):
        """Every object in one netfilter_apply run; changed: service 0 as changed_service_args has it."""
        if state == "absent":
            return {"mirrors": [{"name": self.mirror_name(m), "state": "absent"} for m in range(self.mirrors)],
                    "balancers": [{"name": self.service_name(s), "state": "absent"} for s in range(self.services)]}
        balancers = [self.service_args(s) for s in range(self.services)]
        if changed:
            balancers[0] = self.changed_service_args()
        return {"mirrors": [self.mirror_args(m) for m in range(self.mirrors)], "balancers": balancers}

    def rule_count(self):
        """Rules the collection writes: per service 3 jumps, 1 MASQUERADE, B DNAT, B cascade;
        per mirror 2 jumps and 2 TEE rules."""
        return self.services * (4 + 2 * self.backends) + self.mirrors * 4
