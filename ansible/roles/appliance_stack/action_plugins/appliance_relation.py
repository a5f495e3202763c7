# appliance_relation: wires one relation of an appliance stack, the pipe
#   incus exec PROVIDER -- /usr/lib/appliance/provides/INTERFACE CONSUMER |
#     incus exec CONSUMER -- /usr/lib/appliance/requires/RELATION
# run through the community.general.incus connection plugin: the task is
# delegated to the consumer (its connection runs the consumer's hook, the
# provider's JSON on stdin) and the provider's hook runs through a second
# connection of the same plugin, remote and project. The JSON (credentials)
# stays in memory: never in a result, a registered variable or a log.
# Changed unless the consumer's hook says "RELATION: unchanged".
from __future__ import annotations

import re
import shlex

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.plugins.loader import connection_loader

PROVIDES = "/usr/lib/appliance/provides"
REQUIRES = "/usr/lib/appliance/requires"
NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("consumer", "relation", "provider", "interface"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self._task.args
        consumer, relation, provider = args.get("consumer"), args.get("relation"), args.get("provider")
        interface = args.get("interface") or ""
        for what, value in (("consumer", consumer), ("relation", relation), ("provider", provider)):
            if not isinstance(value, str) or not NAME.match(value):
                return dict(result, failed=True, msg="appliance_relation: %s %r is not a name (a-z, 0-9, '-')" % (what, value))
        where = "%s.%s <- %s" % (consumer, relation, provider)
        if self._play_context.check_mode:
            return dict(result, skipped=True, msg="%s: not wired in check mode" % where)

        prov = self._provider_connection(provider)
        if not interface:
            rc, out, err = prov.exec_command("ls %s" % PROVIDES)
            provided = out.split() if rc == 0 else []
            if len(provided) != 1:
                return dict(result, failed=True, msg="%s: %s provides %s: name the interface (%s/INTERFACE)" % (
                    where, provider, ", ".join(provided) or "no interface (%s is empty or missing)" % PROVIDES, provider))
            interface = provided[0]
        where += " (%s)" % interface
        if not NAME.match(interface):
            return dict(result, failed=True, msg="%s: %r is not an interface name" % (where, interface))

        rc, fields, err = prov.exec_command(shlex.join([PROVIDES + "/" + interface, consumer]))
        if rc != 0:
            return dict(result, failed=True, rc=rc, msg="%s: the provider's hook %s/%s failed (exit %d): %s" % (
                where, PROVIDES, interface, rc, err.strip()))
        rc, out, err = self._connection.exec_command(shlex.join([REQUIRES + "/" + relation]), in_data=fields)
        if rc != 0:
            return dict(result, failed=True, rc=rc, stdout=out, msg="%s: the consumer's hook %s/%s failed (exit %d): %s" % (
                where, REQUIRES, relation, rc, err.strip()))
        said = out.strip().splitlines()[-1] if out.strip() else ""
        return dict(result, changed=not said.startswith(relation + ": unchanged"), msg="%s: %s" % (where, said))

    def _provider_connection(self, provider):
        """A connection of the consumer's plugin, remote and project to the provider."""
        conn = connection_loader.get(self._connection.ansible_name, self._play_context, "/dev/null")
        if conn is None:
            raise AnsibleActionFail("cannot load the connection plugin %s for %s" % (self._connection.ansible_name, provider))
        options = {"remote_addr": provider}
        for key in ("remote", "project", "executable", "remote_user"):
            options[key] = self._connection.get_option(key)
        conn.set_options(direct=options)
        return conn
