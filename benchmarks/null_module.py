"""netfilter_apply's start-up and nothing more: Ansible's handling of the module's arguments
(loading, validation against its argument spec, the result's echo of them) and its imports,
without reading or writing any rule. Run as a module is: `python null_module.py ARGS_FILE`."""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netmagic.netfilter.plugins.module_utils._reconcile import objects_argument_spec

if __name__ == "__main__":
    AnsibleModule(argument_spec=objects_argument_spec(), supports_check_mode=True).exit_json(changed=False)
