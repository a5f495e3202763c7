# The appliance_stack role's plan: the stack description checked and put
# in launch order (providers before their consumers).
from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError

NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")


def _providers(value):
    """A relation's value: "PROVIDER", "PROVIDER/INTERFACE", or a list of them."""
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if not isinstance(item, str):
            raise AnsibleFilterError("a relation names its provider: INSTANCE or INSTANCE/INTERFACE, got %r" % (item,))
        provider, _, interface = item.partition("/")
        out.append((provider, interface))
    return out


def appliance_stack_plan(stack):
    """Checks the stack (instance name -> {appliance, relations, profiles,
    config}) and returns its instances in launch order, providers first,
    each with its relations as {relation, provider, interface} and its
    incus launch options (--profile, --config)."""
    if not isinstance(stack, dict) or not stack:
        raise AnsibleFilterError("appliance_stack: a mapping of instance names to {appliance: NAME, relations: {...}}")
    instances = {}
    for name, spec in stack.items():
        if not NAME.match(str(name)):
            raise AnsibleFilterError("appliance_stack: %r is not an instance name (a-z, 0-9, '-', starting with a letter)" % (name,))
        if not isinstance(spec, dict) or not isinstance(spec.get("appliance"), str) or not spec["appliance"]:
            raise AnsibleFilterError("appliance_stack: %s: give the appliance it is launched from (appliance: NAME)" % name)
        unknown = set(spec) - {"appliance", "relations", "profiles", "config"}
        if unknown:
            raise AnsibleFilterError("appliance_stack: %s: unknown key(s) %s (appliance, relations, profiles, config)" % (name, ", ".join(sorted(unknown))))
        relations = []
        for relation, value in (spec.get("relations") or {}).items():
            if not NAME.match(str(relation)):
                raise AnsibleFilterError("appliance_stack: %s: relation %r is not a relation name" % (name, relation))
            for provider, interface in _providers(value):
                if provider not in stack:
                    raise AnsibleFilterError("appliance_stack: %s: relation %s names %r, which is not an instance of the stack" % (name, relation, provider))
                if provider == name:
                    raise AnsibleFilterError("appliance_stack: %s: relation %s names the instance itself" % (name, relation))
                relations.append({"relation": relation, "provider": provider, "interface": interface})
        options = ["--profile=%s" % p for p in spec.get("profiles") or []]
        options += ["--config=%s=%s" % kv for kv in sorted((spec.get("config") or {}).items())]
        instances[name] = {"name": name, "appliance": spec["appliance"], "launch_options": options, "relations": relations}

    order, state = [], {}

    def visit(name, path):
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            raise AnsibleFilterError("appliance_stack: the relations form a cycle: %s" % " -> ".join(path + [name]))
        state[name] = "visiting"
        for rel in instances[name]["relations"]:
            visit(rel["provider"], path + [name])
        state[name] = "done"
        order.append(instances[name])

    for name in sorted(instances):
        visit(name, [])
    return order


class FilterModule:
    def filters(self):
        return {"appliance_stack_plan": appliance_stack_plan}
