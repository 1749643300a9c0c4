// register_kprobe's own answer for each address (addrs=) and each symbol at offset 0 (syms=):
// one "kpcheck a ADDR RET" / "kpcheck s NAME ADDR RET" line each, the probe removed at once.
#include <linux/module.h>
#include <linux/kprobes.h>

static unsigned long addrs[512];
static int n_addrs;
module_param_array(addrs, ulong, &n_addrs, 0);
static char *syms[256];
static int n_syms;
module_param_array(syms, charp, &n_syms, 0);

static int pre(struct kprobe *p, struct pt_regs *regs) { return 0; }

static int __init kpcheck_init(void)
{
	int i, ret;

	for (i = 0; i < n_addrs; i++) {
		struct kprobe kp = { .addr = (kprobe_opcode_t *)addrs[i], .pre_handler = pre };

		ret = register_kprobe(&kp);
		pr_info("kpcheck a %lx %d\n", addrs[i], ret);
		if (!ret)
			unregister_kprobe(&kp);
	}
	for (i = 0; i < n_syms; i++) {
		struct kprobe kp = { .symbol_name = syms[i], .pre_handler = pre };

		ret = register_kprobe(&kp);
		pr_info("kpcheck s %s %lx %d\n", syms[i], (unsigned long)kp.addr, ret);
		if (!ret)
			unregister_kprobe(&kp);
	}
	return -EAGAIN; /* nothing to keep loaded */
}
module_init(kpcheck_init);
MODULE_LICENSE("GPL");
