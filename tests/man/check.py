#!/usr/bin/env python3
"""The manual pages and cordonctl's bash completion against the programs.

usage: check.py --mandoc M --cordond B --cordonctl B --cordon-notify B
                --cordon-web B --cordon-sim B --conf5 PAGE --completion FILE
                --source DIR PAGE...

Every check reads what the programs say of themselves, so a key, command or
option added without its documentation fails here:

- lint: `mandoc -Tlint -W style` finds nothing in any page (man/*.[158] and
  the generated cordond.conf.5). The pages are linted in a manpath that holds
  them, so an Xr to a cordon page that does not exist is a finding; an Xr to
  another package's page that this machine lacks is not.
- keys: every key `cordond --check-config` prints for an empty file (every key
  of config_keys[] with its default) is an item of its section in
  cordond.conf(5), and every item there is a key. The keys of [notify],
  [receiver.NAME], [route.NAME] and [web] are read from the arrays in the C
  source (notify_keys, receiver_keys, route_keys in src/notifier_config.c,
  web_config_keys in src/web_config.c): the binaries print only the keys a
  file sets.
- commands: every command of `cordonctl --help` heads an item of COMMANDS in
  cordonctl(1), with each of its options in that item, and every item there
  is a command; every gate format it lists is named. cordon-sim(1) likewise
  for `cordon-sim --help`'s commands, each command's own --help options,
  and the faults.
- options: every option of the --help of cordond, cordonctl, cordon-notify
  and cordon-web heads an item of its page.
- completion: bash, run without a terminal, sources the completion (with
  bash-completion's helpers, when installed, and without them), fills
  COMP_WORDS and COMP_CWORD and calls _cordonctl: `cordonctl <TAB>` offers
  exactly the commands of --help, `cordonctl CMD <TAB>` exactly its
  subcommands, `cordonctl CMD [SUB] --<TAB>` exactly its options, and
  `--format <TAB>` the gate formats.
- paths: every /usr/share/doc/cordon/ path that a page, a unit or
  README.Debian names is one that is installed there (meson.build's docdir:
  README.md, docs/*.md, examples/ from config/; README.Debian is the
  package's).

Rendering is `mandoc -Tascii` with a wide line, overstrikes removed.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

BASH_COMPLETION = '/usr/share/bash-completion/bash_completion'

failures = []


def fail(msg):
    failures.append(msg)


def run(argv, ok=(0,)):
    p = subprocess.run(argv, capture_output=True, text=True)
    if p.returncode not in ok:
        sys.exit('%s exited %d: %s' % (' '.join(argv), p.returncode, p.stderr))
    return p.stdout


def render(mandoc, page):
    text = run([mandoc, '-Tascii', '-O', 'width=1000', page])
    return re.sub('.\x08', '', text)


def section(text, name):
    """The lines of a top-level section (.Sh) of a rendered page."""
    m = re.search(r'(?m)^%s\n(.*?)(?=^\S)' % re.escape(name), text + '\nEND\n', re.S)
    return m.group(1).splitlines() if m else []


def items(lines, indent=5):
    """Tag-list items of a section: [(head, text of head and body)], heads
    being the lines indented exactly `indent`."""
    out = []
    for line in lines:
        ind = len(line) - len(line.lstrip(' '))
        if line.strip() and ind == indent:
            out.append([line.strip(), line.strip()])
        elif out and line.strip():
            out[-1][1] += ' ' + line.strip()
    return [tuple(i) for i in out]


def has_token(text, tok):
    return re.search(r'(?<![\w-])%s(?![\w-])' % re.escape(tok), text) is not None


# ------------------------------------------------------------------ lint

def check_lint(mandoc, pages):
    manpath = tempfile.mkdtemp(prefix='cordon-man-')
    try:
        for p in pages:
            sec = p.rsplit('.', 1)[1]
            os.makedirs(os.path.join(manpath, 'man' + sec), exist_ok=True)
            shutil.copy(p, os.path.join(manpath, 'man' + sec))
        env = dict(os.environ, MANPATH=manpath + ':/usr/share/man')
        for p in pages:
            r = subprocess.run([mandoc, '-Tlint', '-W', 'style', p], capture_output=True,
                               text=True, env=env)
            for line in (r.stdout + r.stderr).splitlines():
                if 'outdated mandoc.db' in line:
                    continue  # a note on this machine's database, not the page
                m = re.search(r'referenced manual not found: Xr (\S+)', line)
                if m and not m.group(1).startswith('cordon'):
                    continue  # another package's page, not installed here
                fail('mandoc -Tlint: ' + line)
    finally:
        shutil.rmtree(manpath)


# ------------------------------------------------------------------ keys

def c_array(source, path, name):
    text = open(os.path.join(source, path)).read()
    m = re.search(r'\b%s\[\]\s*=\s*\{(.*?)\};' % re.escape(name), text, re.S)
    if not m:
        sys.exit('%s: no array %s[]' % (path, name))
    return re.findall(r'"([^"]*)"', m.group(1))


def conf5_sections(text):
    """{'[mqtt]': {'uri', ...}, '[receiver.NAME]': {...}} from the page."""
    out, cur = {}, None
    for line in text.splitlines():
        m = re.match(r'^   (\[\S+\])\s*$', line)
        if m:
            cur = out.setdefault(m.group(1), set())
            continue
        if re.match(r'^\S', line):
            cur = None
        m = re.match(r'^     ([a-z_]+) = ', line)
        if m and cur is not None:
            cur.add(m.group(1))
    return out


def check_keys(args, conf5):
    with tempfile.NamedTemporaryFile('w', suffix='.conf') as empty:
        out = run([args.cordond, '--check-config', '-c', empty.name])
    want, sec = {}, None
    for line in out.splitlines():
        m = re.match(r'^\[(\w+)\]$', line)
        if m:
            sec = '[%s]' % m.group(1)
            want[sec] = set()
        elif ' = ' in line:
            want[sec].add(line.split(' = ', 1)[0])
    if len(want) < 5 or sum(len(v) for v in want.values()) < 40:
        sys.exit('cordond --check-config printed too little:\n' + out)
    src = args.source
    want['[notify]'] = set(c_array(src, 'src/notifier_config.c', 'notify_keys'))
    want['[receiver.NAME]'] = set(c_array(src, 'src/notifier_config.c', 'receiver_keys'))
    want['[route.NAME]'] = set(c_array(src, 'src/notifier_config.c', 'route_keys'))
    want['[web]'] = set(c_array(src, 'src/web_config.c', 'web_config_keys'))
    have = conf5_sections(render(args.mandoc, conf5))
    for sec, keys in want.items():
        for k in sorted(keys - have.get(sec, set())):
            fail('cordond.conf.5: %s %s is not documented' % (sec, k))
        for k in sorted(have.get(sec, set()) - keys):
            fail('cordond.conf.5: %s %s is documented but no program has it' % (sec, k))
    for sec in sorted(set(have) - set(want)):
        fail('cordond.conf.5: section %s is documented but no program has it' % sec)
    return sum(len(v) for v in want.values())


# ------------------------------------------------------------------ options

def help_options(text):
    """[(short, long)] of the '  -c, --config FILE' lines of a usage."""
    return re.findall(r'(?m)^\s+(-\w), (--[\w-]+)', text)


def check_options(name, usage, page_text):
    opts = help_options(usage)
    if not opts:
        sys.exit('%s --help lists no option:\n%s' % (name, usage))
    heads = [h for h, _ in items(section(page_text, 'DESCRIPTION'))]
    for short, long in opts:
        if not any(h.startswith(short) and has_token(h, long) for h in heads):
            fail('%s: option %s, %s is not an item of DESCRIPTION' % (name, short, long))
    return len(opts)


# ------------------------------------------------------------------ cordonctl

def ctl_commands(usage):
    """[(words, options)] of `cordonctl --help`'s command list, words being
    the command and its subcommand ('gate maintain'), and the gate formats."""
    lines = usage.split('\ncommands:\n', 1)[1].splitlines()
    synopses = []
    for line in lines:
        if not line.strip():
            break
        ind = len(line) - len(line.lstrip(' '))
        syn = re.split(r'\s{2,}', line.strip(), maxsplit=1)[0]
        if ind == 2:
            synopses.append(syn)
        elif ind < 30:
            synopses[-1] += ' ' + syn
    entries = []
    for syn in synopses:
        for alt in re.split(r'\s\|\s(?=[a-z])', syn):
            tok = alt.split()
            words = tok[:2] if len(tok) > 1 and re.fullmatch(r'[a-z]+', tok[1]) else tok[:1]
            entries.append((' '.join(words), set(re.findall(r'--[a-z][a-z-]*', alt))))
    m = re.search(r'(?m)^\s+formats: (.*)$', usage)
    formats = m.group(1).split() if m else []
    return entries, formats


def check_cordonctl(args, usage, page):
    text = render(args.mandoc, page)
    entries, formats = ctl_commands(usage)
    if len(entries) < 20 or not formats:
        sys.exit('cordonctl --help: cannot read its commands:\n' + usage)
    cmd_items = items(section(text, 'COMMANDS'))
    keys = {w for w, _ in entries}
    firsts = {w.split()[0] for w in keys}
    for words, opts in entries:
        block = ' '.join(t for h, t in cmd_items if (h + ' ').startswith(words + ' '))
        if not block:
            fail('cordonctl.1: command "%s" is not an item of COMMANDS' % words)
            continue
        for o in sorted(opts):
            if not has_token(block, o):
                fail('cordonctl.1: "%s" does not document %s' % (words, o))
    for head, _ in cmd_items:
        tok = head.split()
        key = ' '.join(tok[:2])
        if tok[0] not in firsts or (key not in keys and tok[0] not in keys):
            fail('cordonctl.1: COMMANDS has "%s", which cordonctl --help does not list' % head)
    for f in formats:
        if not has_token(text, f):
            fail('cordonctl.1: gate format %s is not named' % f)
    return entries, formats


# ------------------------------------------------------------------ cordon-sim

def check_cordon_sim(args, page):
    usage = run([args.cordon_sim, '--help'])
    text = render(args.mandoc, page)
    cmds = re.findall(r'(?m)^  ([a-z]+) --', usage)
    faults = re.findall(r'(?m)^  ([a-z_]+) {2,}\S', usage.split('\nFaults', 1)[1])
    if len(cmds) < 3 or len(faults) < 10:
        sys.exit('cordon-sim --help: cannot read its commands and faults:\n' + usage)
    lines = section(text, 'COMMANDS')
    split = lines.index('   Faults') if '   Faults' in lines else len(lines)
    cmd_items = items(lines[:split])
    for c in cmds:
        block = ' '.join(t for h, t in cmd_items if h.split()[0] == c)
        if not block:
            fail('cordon-sim.1: command %s is not an item of COMMANDS' % c)
            continue
        for o in sorted(set(re.findall(r'--[a-z][a-z-]*', run([args.cordon_sim, c, '--help'])))):
            if o != '--help' and not has_token(block, o):
                fail('cordon-sim.1: %s does not document %s' % (c, o))
    for head, _ in cmd_items:
        if head.split()[0] not in cmds:
            fail('cordon-sim.1: COMMANDS has "%s", which cordon-sim --help does not list' % head)
    fault_heads = {h.split()[0] for h, _ in items(lines[split + 1:])
                   if re.match(r'[a-z_]+( {2,}|$)', h)}
    for f in faults:
        if f not in fault_heads:
            fail('cordon-sim.1: fault %s is not an item of Faults' % f)
    for f in sorted(fault_heads - set(faults)):
        fail('cordon-sim.1: Faults has %s, which cordon-sim --help does not list' % f)
    return len(cmds), len(faults)


# ------------------------------------------------------------------ completion

def complete(completion, words, with_helpers):
    script = r'''
if [[ $1 == with ]]; then . "$2"; fi
. "$3"
shift 3
COMP_WORDS=("$@")
COMP_CWORD=$(($# - 1))
COMP_LINE="$*"
COMP_POINT=${#COMP_LINE}
COMPREPLY=()
_cordonctl cordonctl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
printf '%s\n' "${COMPREPLY[@]}"
'''
    p = subprocess.run(['bash', '--norc', '--noprofile', '-c', script, 'bash',
                        'with' if with_helpers else 'without', BASH_COMPLETION, completion]
                       + words, capture_output=True, text=True, cwd=tempfile.gettempdir())
    if p.returncode != 0:
        fail('completion of %r: bash exited %d: %s' % (words, p.returncode, p.stderr))
    return {w for w in p.stdout.split('\n') if w}


def check_completion(args, entries, formats):
    commands = {w.split()[0] for w, _ in entries}
    subs, opts = {}, {}
    for words, o in entries:
        w = words.split()
        if len(w) == 2:
            subs.setdefault(w[0], set()).add(w[1])
        opts.setdefault(words, set()).update(o)
    modes = [False] + ([True] if os.path.exists(BASH_COMPLETION) else [])
    cases = [(['cordonctl', ''], commands),
             (['cordonctl', '-c', '/etc/cordon/cordond.conf', ''], commands),
             (['cordonctl', '-'], {'-c', '--config', '-h', '--help', '-V', '--version'}),
             (['cordonctl', 'gate', 'add', 's1', 'G01', '--format', ''], set(formats))]
    cases += [(['cordonctl', c, ''], s) for c, s in subs.items()]
    cases += [(['cordonctl'] + k.split() + ['--'], o) for k, o in opts.items() if o]
    for with_helpers in modes:
        for words, want in cases:
            got = complete(args.completion, words, with_helpers)
            if got != want:
                fail('completion of "%s" (%s bash-completion): %s, want %s'
                     % (' '.join(words), 'with' if with_helpers else 'without',
                        sorted(got), sorted(want)))
    return len(cases), modes


# ------------------------------------------------------------------ paths

DOCDIR = '/usr/share/doc/cordon/'


def installed_docs(source):
    """The files and directories under DOCDIR, relative to it, as meson.build
    installs them (and the package's README.Debian)."""
    meson = open(os.path.join(source, 'meson.build')).read()
    files = {'README.md', 'README.Debian'}
    files |= {'docs/' + f for f in os.listdir(os.path.join(source, 'docs'))}
    files |= {'examples/' + f for f in os.listdir(os.path.join(source, 'config'))
              if "'config/%s'" % f in meson}
    return files, {'', 'docs/', 'examples/'}


def check_doc_paths(source, texts):
    """texts: {name: text}. Returns how many paths were checked."""
    files, dirs = installed_docs(source)
    n = 0
    for name, text in texts.items():
        for m in re.finditer(re.escape(DOCDIR) + r'([\w./-]*)', text):
            rel = m.group(1).rstrip('.')
            n += 1
            if rel not in files and (rel.rstrip('/') + '/').lstrip('/') not in dirs:
                fail('%s names %s%s, which is not installed' % (name, DOCDIR, rel))
    return n


# ------------------------------------------------------------------ main

def main():
    ap = argparse.ArgumentParser()
    for name in ('mandoc', 'cordond', 'cordonctl', 'cordon-notify', 'cordon-web',
                 'cordon-sim', 'conf5', 'completion', 'source'):
        ap.add_argument('--' + name, required=True)
    ap.add_argument('pages', nargs='+')
    args = ap.parse_args()
    if not shutil.which(args.mandoc):
        sys.exit('mandoc not found: apt-get install mandoc (scripts/lib/deps.sh)')
    pages = {os.path.basename(p): p for p in args.pages + [args.conf5]}

    check_lint(args.mandoc, list(pages.values()))
    nkeys = check_keys(args, args.conf5)
    nopts = 0
    for prog in ('cordond', 'cordon-notify', 'cordon-web'):
        binary = getattr(args, prog.replace('-', '_'))
        page = pages[prog + '.8']
        nopts += check_options(prog, run([binary, '--help']), render(args.mandoc, page))
    ctl_usage = run([args.cordonctl, '--help'])
    nopts += check_options('cordonctl', ctl_usage, render(args.mandoc, pages['cordonctl.1']))
    entries, formats = check_cordonctl(args, ctl_usage, pages['cordonctl.1'])
    ncmds, nfaults = check_cordon_sim(args, pages['cordon-sim.1'])
    ncases, modes = check_completion(args, entries, formats)
    texts = {name: render(args.mandoc, p) for name, p in pages.items()}
    for rel in ('systemd/cordond.service', 'systemd/cordon-notify.service',
                'systemd/cordon-web.service', 'debian/cordon.README.Debian'):
        texts[rel] = open(os.path.join(args.source, rel)).read()
    npaths = check_doc_paths(args.source, texts)

    for f in failures:
        print('FAIL: ' + f)
    print('%d pages linted; %d keys, %d program options, %d cordonctl commands, '
          '%d cordon-sim commands and %d faults checked; %d completions x %d modes; '
          '%d documentation paths; %d failures'
          % (len(pages), nkeys, nopts, len(entries), ncmds, nfaults, ncases, len(modes),
             npaths, len(failures)))
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
