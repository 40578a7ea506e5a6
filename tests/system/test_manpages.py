"""The man pages tell what the program does: renkei(1) names every command
and subcommand that `renkei … --help` lists, and documents exactly the
options each one's --help lists; node.conf(5) documents every key of the
table in src/node/config.c with its bounds and default. Both pages render
with scdoc. Each check also runs once on a page with a difference put in,
which it must find."""
import os
import re
import shutil
import subprocess
import unittest

from harness import main, renkei

SRC = os.environ.get("RENKEI_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "../..")
MAN1 = os.path.join(SRC, "man", "renkei.1.scd")
MAN5 = os.path.join(SRC, "man", "node.conf.5.scd")
CONFIG_C = os.path.join(SRC, "src", "node", "config.c")

OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
SUBCOMMAND_LINE = re.compile(r"^  ([a-z][a-z0-9-]*)(?:\s|$)")


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


# ---------- what --help says ----------

def help_text(*cmd):
    """The --help text of a command, or None when it has no --help of its own."""
    p = renkei(*cmd, "--help", check=False)
    text = p.stdout + p.stderr
    if p.returncode != 0 or not text.lower().startswith("usage"):
        return None
    return text


def subcommands_in_help(cmd, text):
    """The subcommands a command's --help names. When its usage line has a
    placeholder after the command (`renkei net COMMAND DIR`), they are the
    lines that start with two spaces and a word; otherwise the words that
    follow `renkei CMD` in its usage lines (`renkei mynumber check N…`)."""
    prefix = " ".join(["renkei", *cmd])
    first = text.splitlines()[0]
    m = re.match(r"usage: " + re.escape(prefix) + r" (\S+)", first)
    if m and re.fullmatch(r"[A-Z]+", m.group(1)):
        return {m.group(1) for m in map(SUBCOMMAND_LINE.match, text.splitlines()) if m}
    return set(re.findall(re.escape(prefix) + r" ([a-z][a-z0-9-]*)\b", text))


def options_in_help(text):
    return set(OPTION.findall(text)) - {"--help"}


def help_tree():
    """{command path (tuple): set of options} for every command that takes no
    further subcommand, and {command path: set of subcommands} for the others,
    as `renkei … --help` tells them."""
    top = help_text()
    assert top, "renkei --help printed no usage"
    leaves, parents = {}, {(): subcommands_in_help((), top)}
    for word in sorted(parents[()]):
        walk_help((word,), top, leaves, parents)
    return leaves, parents


def walk_help(cmd, parent_text, leaves, parents):
    text = help_text(*cmd)
    if text is None:
        # no --help of its own (`mynumber check`): its parent's lines about it are its help
        lines = [l for l in parent_text.splitlines() if " ".join(cmd) in l]
        leaves[cmd] = options_in_help("\n".join(lines))
        return
    subs = subcommands_in_help(cmd, text)
    if subs:
        parents[cmd] = subs
        for s in sorted(subs):
            walk_help(cmd + (s,), text, leaves, parents)
    else:
        leaves[cmd] = options_in_help(text)


# ---------- what renkei(1) says ----------

def man_tree(text):
    """{command path: set of options} for every `## renkei …` section of the
    page: the options are the lines that start with `*--option*`."""
    sections, current = {}, None
    for line in text.splitlines():
        if line.startswith("#"):
            m = re.match(r"^## renkei ([a-z][a-z0-9 -]*)$", line)
            current = tuple(m.group(1).split()) if m else None
            if current is not None:
                if current in sections:
                    raise AssertionError(f"renkei(1): section {' '.join(current)} twice")
                sections[current] = set()
            continue
        m = re.match(r"^\*(--[a-z][a-z0-9-]*)\*", line)
        if m and current is not None:
            sections[current].add(m.group(1))
    return sections


def compare(help_leaves, help_parents, man_sections):
    """Every difference between --help and the page, as sentences."""
    diffs = []
    man_paths = set(man_sections)
    for parent, subs in help_parents.items():
        in_man = {p[len(parent)] for p in man_paths if len(p) == len(parent) + 1 and p[:len(parent)] == parent}
        name = " ".join(("renkei",) + parent)
        for s in sorted(subs - in_man):
            diffs.append(f"`{name} --help` lists {s}, renkei(1) has no section '## {name} {s}'")
        for s in sorted(in_man - subs):
            diffs.append(f"renkei(1) documents '{name} {s}', which `{name} --help` does not list")
    for leaf, opts in help_leaves.items():
        name = " ".join(("renkei",) + leaf)
        if leaf not in man_sections:
            continue  # reported above
        documented = man_sections[leaf] - {"--help"}
        for o in sorted(opts - documented):
            diffs.append(f"`{name} --help` lists {o}, renkei(1) does not document it")
        for o in sorted(documented - opts):
            diffs.append(f"renkei(1) documents {o} for '{name}', which its --help does not list")
    for path in man_paths:
        if path not in help_leaves and path not in help_parents:
            if path[:-1] in help_parents:
                continue  # reported above as not listed
            diffs.append(f"renkei(1) has a section for 'renkei {' '.join(path)}', which is no command")
    return diffs


# ---------- node.conf(5) and config.c ----------

def config_keys():
    """{(section, key): (kind, min, max, default, default_text)} from the table in config.c."""
    text = read(CONFIG_C)
    table = text[text.index("static const key_def keys[]"):]
    table = table[:table.index("};")]
    table = re.sub(r"/\*.*?\*/", "", table, flags=re.S)
    consts = {"DAY_MS": 86400000}

    def num(expr):
        expr = re.sub(r"(\d+)L\b", r"\1", expr.strip())
        for k, v in consts.items():
            expr = expr.replace(k, str(v))
        if not re.fullmatch(r"[-+*<>()\d\s]+", expr):
            return None  # TEXT_CAP(...): a field's size
        return int(eval(expr))  # only digits and arithmetic, checked above

    keys = {}
    for m in re.finditer(r'\{"(\w+)",\s*"(\w+)",\s*(K_\w+),\s*AT\(\w+\),\s*([^,]+),\s*((?:[^,(]|\([^)]*\))+),'
                         r'\s*([^,]+),\s*(NULL|"[^"]*")\}', table):
        section, key, kind, lo, hi, default, default_text = m.groups()
        keys[(section, key)] = (kind, num(lo), num(hi), num(default),
                                None if default_text == "NULL" else default_text.strip('"'))
    return keys


def man_keys(text):
    """{(section, key): description} from node.conf(5): `## [section]`, then `*key* = …`."""
    keys, section, current = {}, None, None
    for line in text.splitlines():
        m = re.match(r"^## \[(\w+)\]$", line)
        if m:
            section, current = m.group(1), None
            continue
        if line.startswith("#"):
            section = current = None
            continue
        m = re.match(r"^\*(\w+)\* =", line)
        if m and section:
            current = (section, m.group(1))
            if current in keys:
                raise AssertionError(f"node.conf(5): [{section}] {m.group(1)} twice")
            keys[current] = ""
        elif current and line.startswith("\t"):
            keys[current] += " " + line.strip()
        elif not line.strip():
            current = None
    return keys


def compare_keys(table, page):
    diffs = []
    for k in sorted(set(table) - set(page)):
        diffs.append(f"config.c has [{k[0]}] {k[1]}, node.conf(5) does not document it")
    for k in sorted(set(page) - set(table)):
        diffs.append(f"node.conf(5) documents [{k[0]}] {k[1]}, which config.c does not know")
    for k in sorted(set(table) & set(page)):
        kind, lo, hi, default, default_text = table[k]
        desc = re.sub(r"\s+", " ", page[k])
        name = f"[{k[0]}] {k[1]}"
        if kind in ("K_INT", "K_SIZE", "K_LONG"):
            if f"{lo} to {hi}" not in desc:
                diffs.append(f"node.conf(5): {name} should say its range '{lo} to {hi}'")
            if f"default {default}" not in desc:
                diffs.append(f"node.conf(5): {name} should say 'default {default}'")
        elif default_text is not None and f"default {default_text}" not in desc.lower():
            diffs.append(f"node.conf(5): {name} should say 'Default {default_text}'")
    return diffs


class RenkeiPage(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.leaves, cls.parents = help_tree()
        cls.text = read(MAN1)

    def test_the_help_tree_is_read(self):
        # the parsing of --help itself: the commands the README names are found
        self.assertGreaterEqual(self.parents[()], {"core", "jlis", "gateway", "agency", "demo", "net", "pki",
                                                   "mynumber", "agency-ctl", "records", "bench"})
        self.assertEqual(self.parents[("net",)], {"init", "up", "status"})
        self.assertIn("--persons", self.leaves[("net", "init")])
        self.assertEqual(self.leaves[("core",)], {"--config"})

    def test_every_command_and_option_is_documented_and_nothing_more(self):
        diffs = compare(self.leaves, self.parents, man_tree(self.text))
        self.assertEqual(diffs, [], "\n".join(diffs))

    def test_a_difference_is_found(self):
        dropped = re.sub(r"^\*--base-port\* _P_\n\t.*\n", "", self.text, flags=re.M)
        self.assertNotEqual(dropped, self.text)
        diffs = compare(self.leaves, self.parents, man_tree(dropped))
        self.assertEqual(diffs, ["`renkei net init --help` lists --base-port, renkei(1) does not document it"])
        extra = self.text.replace("*--keep*\n", "*--keep*\n\n*--fast*\n\tGo faster.\n", 1)
        self.assertIn("renkei(1) documents --fast for 'renkei demo', which its --help does not list",
                      compare(self.leaves, self.parents, man_tree(extra)))
        gone = self.text.replace("## renkei pki show\n", "## renkei pki shown\n")
        diffs = compare(self.leaves, self.parents, man_tree(gone))
        self.assertIn("`renkei pki --help` lists show, renkei(1) has no section '## renkei pki show'", diffs)


class NodeConfPage(unittest.TestCase):
    def test_every_key_with_its_range_and_default(self):
        table = config_keys()
        self.assertGreaterEqual(len(table), 30)  # the parsing of config.c itself
        self.assertEqual(table[("node", "workers")], ("K_INT", 1, 64, 16, None))
        self.assertEqual(table[("node", "max_body")], ("K_SIZE", 256, 64 << 20, 1 << 20, None))
        diffs = compare_keys(table, man_keys(read(MAN5)))
        self.assertEqual(diffs, [], "\n".join(diffs))

    def test_a_difference_is_found(self):
        text = read(MAN5)
        table = config_keys()
        wrong = text.replace("1 to 64, default 16.", "1 to 64, default 8.")
        self.assertEqual(compare_keys(table, man_keys(wrong)),
                         ["node.conf(5): [node] workers should say 'default 16'"])
        table[("node", "colour")] = ("K_TEXT", None, None, None, None)
        self.assertEqual(compare_keys(table, man_keys(text)),
                         ["config.c has [node] colour, node.conf(5) does not document it"])


@unittest.skipUnless(shutil.which("scdoc"), "scdoc is not installed (scripts/install-deps.sh installs it)")
class Render(unittest.TestCase):
    def test_scdoc_renders_both_pages(self):
        for src in (MAN1, MAN5):
            with open(src, "rb") as f:
                p = subprocess.run(["scdoc"], stdin=f, capture_output=True, timeout=30)
            self.assertEqual(p.returncode, 0, (src, p.stderr.decode()))
            self.assertIn(b".TH ", p.stdout)


if __name__ == "__main__":
    main()
