#!/usr/bin/env python3
"""Driver of benches/compare: run the issue-5 workloads with the reference ``plums`` 0.5.2 and
with ours in one run, and print a Markdown table of ratios. Run through ``benches/compare``
(which builds the Rust programs first); see docs/PERFORMANCE.md.

Workloads:
  training  N epochs x M MiB checkpoint (fresh random content each epoch), save every epoch to
            the same folder: reference, our Rust library (example bench_workloads, durable
            saves, also without fsync for context), our Python bindings (``plums_model``).
  validate  strict validation of a model with 8 checkpoints x 256 MiB, page cache warm:
            reference ``validate(path, strict=True)``, our Rust library, ``pmf validate``, and
            ``md5sum`` of the same files in parallel on all cores (the practical limit).
  load      ``Model.load`` (non-strict) of a model with 10,000 checkpoints.
  startup   ``pmf validate --quick`` of a small model vs ``python -c`` importing the reference
            and validating the same model (hyperfine when installed, else the median of runs).
  s3        object storage, against a SeaweedFS server on 127.0.0.1 started for the run (not in
            the default set; also one by one: s3_training, s3_validate, s3_download_validate,
            s3_cp, s3_background): see benches/s3_bench.py.
  background  issue 11, the training loop with our bindings (not in the default set; also one by
            one: background_save, retention): blocking time of a background save of a new
            512 MiB checkpoint against the synchronous save, and a 100-epoch loop with
            ``Retention(last=3)``: see benches/training_bench.py (s3_background: the same to S3).
  fleet     issue 12 (not in the default set; workload fleet_ls): ``pmf ls --json`` of a folder of
            10,000 models against a Python script that walks it with ``os.walk`` and loads each
            model with the reference (non-strict), and against ``find | xargs cat`` of every
            metadata.yaml: see benches/fleet_bench.py.
"""
import argparse
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.join(ROOT, 'benches')
MIB = 1 << 20
GIB = 1 << 30


def log(*a):
    print('[compare]', *a, file=sys.stderr, flush=True)


class Env:
    def __init__(self, args):
        self.args = args
        self.python = args.python
        target = os.environ.get('CARGO_TARGET_DIR', os.path.join(ROOT, 'target'))
        self.example = os.path.join(target, 'release', 'examples', 'bench_workloads')
        self.pmf = os.path.join(target, 'release', 'pmf')
        if not os.access(self.pmf, os.X_OK):
            self.pmf = None
        if not os.access(self.example, os.X_OK):
            sys.exit('benches/compare: %s is missing: run benches/compare (it builds it) or '
                     'cargo build --release -p plums-model --example bench_workloads' % self.example)
        self.hyperfine = shutil.which('hyperfine')
        self.nproc = os.cpu_count() or 1
        self._bindings = None
        self.s3 = None  # the S3 server of the s3 workloads (s3_bench.Server), started on first use

    def bindings_available(self):
        if self._bindings is None:
            r = subprocess.run([self.python, '-c', 'import plums_model'], capture_output=True, text=True)
            self._bindings = r.returncode == 0
            if not self._bindings:
                log('bindings not built (import plums_model failed: %s)' % r.stderr.strip().splitlines()[-1:])
        return self._bindings


def run_json(cmd, **kw):
    """Run a command that prints one JSON object; return (object, wall seconds, cpu seconds)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if r.returncode != 0:
        out = None
        try:
            out = json.loads(r.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            pass
        if isinstance(out, dict) and out.get('error'):
            return out, wall, cpu
        raise RuntimeError('%s failed (%d):\n%s%s' % (' '.join(cmd), r.returncode, r.stdout[-2000:], r.stderr[-4000:]))
    return json.loads(r.stdout.strip().splitlines()[-1]), wall, cpu


def run_timed(cmd, **kw):
    """Run a command, discard its output; return (wall seconds, cpu seconds)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **kw)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise RuntimeError('%s failed (%d): %s' % (cmd if isinstance(cmd, str) else ' '.join(cmd), r.returncode, r.stderr[-2000:]))
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


# ---------------------------------------------------------------- formatting

def fmt_s(s):
    if s is None:
        return 'n/a'
    if s >= 1:
        return '%.2f s' % s
    if s >= 1e-3:
        return '%.1f ms' % (s * 1e3)
    return '%.0f µs' % (s * 1e6)


def spread(values, fmt=fmt_s):
    """median (min–max, n) of a list of values."""
    if not values:
        return 'n/a'
    med = statistics.median(values)
    if len(values) == 1:
        return fmt(med)
    return '%s (%s–%s, n=%d)' % (fmt(med), fmt(min(values)), fmt(max(values)), len(values))


def fmt_ratio(r):
    if r is None:
        return 'n/a'
    return ('%.0f×' % r) if r >= 10 else ('%.2f×' % r)


def fmt_mbs(v):
    return '%.0f MB/s' % v


class Table:
    def __init__(self):
        self.rows = []
        self.targets = []

    def row(self, workload, reference, ours, ratio, target='', met=None):
        shown = ('not measured' if target else '') if met is None else ('**yes**' if met else '**NO**')
        self.rows.append((workload, reference, ours, ratio, target, shown))
        if target:
            self.targets.append((workload, target, met))

    def markdown(self):
        lines = ['| workload | reference plums 0.5.2 | ours | ratio | target | met |', '|---|---|---|---|---|---|']
        for r in self.rows:
            lines.append('| ' + ' | '.join(x.replace('|', '\\|') for x in r) + ' |')
        return '\n'.join(lines)


# ---------------------------------------------------------------- workloads

def w_training(env, tmp, table, results):
    a = env.args
    epochs, size = a.epochs, a.size_mib
    mid = min(10, epochs)
    log('training: %d epochs x %d MiB (reference: about %d s for 100 x 4 MiB)' % (epochs, size, 76))

    def loop(cmd_for_dir, name):
        d = os.path.join(tmp, 'training-' + name)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        # Start with no dirty data of an earlier workload (a loop without fsync leaves hundreds
        # of MiB for the kernel to write back): it would be written during this loop's fsyncs.
        os.sync()
        out, _, _ = run_json(cmd_for_dir(d))
        shutil.rmtree(d, ignore_errors=True)
        return out

    ref = None
    if not a.skip_reference:
        ref = loop(lambda d: [env.python, os.path.join(HERE, 'workloads.py'), '--impl', 'reference', 'training',
                              '--dir', d, '--epochs', str(epochs), '--size-mib', str(size)], 'reference')
        log('  reference: total save %.2f s, save %d %s, save %d %s' % (
            ref['total_save_s'], mid, fmt_s(ref['save_s'][mid - 1]), epochs, fmt_s(ref['save_s'][-1])))
    rust, rust_nd = [], []
    for i in range(a.rounds):
        rust.append(loop(lambda d: [env.example, 'training', '--dir', d, '--epochs', str(epochs), '--size-mib', str(size),
                                    '--seed', str(100 + i)], 'rust'))
        rust_nd.append(loop(lambda d: [env.example, 'training', '--dir', d, '--epochs', str(epochs), '--size-mib', str(size),
                                       '--seed', str(200 + i), '--no-durable'], 'rust-nd'))
        log('  rust round %d: total save %.3f s (no fsync %.3f s), save %d %s, save %d %s' % (
            i + 1, rust[-1]['total_save_s'], rust_nd[-1]['total_save_s'], mid, fmt_s(rust[-1]['save_s'][mid - 1]),
            epochs, fmt_s(rust[-1]['save_s'][-1])))
    py = []
    if env.bindings_available():
        for i in range(a.rounds):
            out = loop(lambda d: [env.python, os.path.join(HERE, 'workloads.py'), '--impl', 'bindings', 'training',
                                  '--dir', d, '--epochs', str(epochs), '--size-mib', str(size)], 'bindings')
            if out.get('error'):
                break
            py.append(out)
    # History dependence without the training loop's growing page cache: saves of a model that
    # already holds N checkpoints, each save adding one new checkpoint of the same size.
    d = os.path.join(tmp, 'save-scaling')
    shutil.rmtree(d, ignore_errors=True)
    os.sync()
    scaling, _, _ = run_json([env.example, 'save-scaling', '--dir', d, '--counts', a.scaling_counts, '--repeat', '10',
                              '--size-mib', str(size)])
    shutil.rmtree(d, ignore_errors=True)
    rows = scaling['rows']
    slope = (rows[-1]['median_s'] - rows[0]['median_s']) / (rows[-1]['checkpoints'] - rows[0]['checkpoints'])
    log('  save scaling: %s; %.0f µs per checkpoint already saved' % (
        ', '.join('N=%d %s' % (r['checkpoints'], fmt_s(r['median_s'])) for r in rows), slope * 1e6))
    results['training'] = {'reference': ref, 'rust': rust, 'rust_no_fsync': rust_nd, 'bindings': py, 'save_scaling': scaling}

    def window(saves, center):
        """Median of the 10 saves ending at `center` (1-based), less sensitive to one fsync stall."""
        lo = max(0, center - 10)
        return statistics.median(saves[lo:center])

    ref_total = ref['total_save_s'] if ref else None
    label = 'training loop %d × %d MiB: total save time' % (epochs, size)
    for name, runs, has_target in (('Rust library (durable: fsync)', rust, True),
                                   ('Rust library, no fsync (like the reference)', rust_nd, False),
                                   ('Python bindings `plums_model`, durable', py, True)):
        target = '≥ 30×' if has_target else ''
        if not runs:
            table.row('%s, %s' % (label, name), fmt_s(ref_total), 'bindings not built', 'n/a', target, None)
            continue
        totals = [r['total_save_s'] for r in runs]
        ratio = ref_total / statistics.median(totals) if ref_total else None
        table.row('%s, %s' % (label, name), fmt_s(ref_total), spread(totals), fmt_ratio(ratio), target,
                  (None if ratio is None else ratio >= 30) if has_target else None)
        if not has_target:
            continue
        # The last save against the 10th: history must not make a save slower.
        last_mid = [r['save_s'][-1] / r['save_s'][mid - 1] for r in runs]
        win = [window(r['save_s'], epochs) / window(r['save_s'], mid) for r in runs]
        ours_desc = 'save %d: %s; save %d: %s' % (mid, spread([r['save_s'][mid - 1] for r in runs]), epochs,
                                                   spread([r['save_s'][-1] for r in runs]))
        ref_desc = ('save %d: %s; save %d: %s (%.0f×)' % (mid, fmt_s(ref['save_s'][mid - 1]), epochs, fmt_s(ref['save_s'][-1]),
                                                         ref['save_s'][-1] / ref['save_s'][mid - 1])) if ref else 'n/a'
        # One save is one sample: the verdict is on the median over the rounds.
        table.row('&nbsp;&nbsp;save %d ÷ save %d, %s (per round; medians of saves %d–%d ÷ %d–%d: %s)' % (
                      epochs, mid, name, epochs - 9, epochs, max(1, mid - 9), mid, ', '.join('%.2f' % w for w in win)),
                  ref_desc, ours_desc, '%s (median %.2f)' % (', '.join('%.2f' % x for x in last_mid), statistics.median(last_mid)),
                  '≤ 2', statistics.median(last_mid) <= 2)

    table.row('&nbsp;&nbsp;(context) one durable save adding 1 × %d MiB to a model holding N checkpoints, Rust (median of 10)' % size,
              '', '; '.join('N=%d: %s' % (r['checkpoints'], fmt_s(r['median_s'])) for r in rows),
              '+%.0f µs per saved checkpoint' % (slope * 1e6), '', None)


def median_mbs(nbytes, times):
    return nbytes / 1e6 / statistics.median(times)


def w_validate(env, tmp, table, results):
    a = env.args
    count, size = a.val_files, a.val_mib
    root = os.path.join(tmp, 'strict-model')
    log('validate: creating a model with %d checkpoints x %d MiB in %s' % (count, size, root))
    run_json([env.example, 'make-model', '--dir', root, '--checkpoints', str(count), '--size', str(size * MIB)])
    meta_files = [os.path.join(root, 'config.py')] + sorted(
        os.path.join(root, 'data', 'checkpoints', f) for f in os.listdir(os.path.join(root, 'data', 'checkpoints')))
    nbytes = sum(os.path.getsize(f) for f in meta_files)
    listing = os.path.join(tmp, 'strict-files.txt')
    with open(listing, 'w') as f:
        f.write(''.join(p + '\n' for p in meta_files))
    md5sum_cmd = ['sh', '-c', 'xargs -P %d -n 1 md5sum < "$1" > /dev/null' % env.nproc, 'sh', listing]
    md5sum_1 = ['md5sum', meta_files[-1]]
    # Warm the page cache (and check that everything works) before timing.
    run_timed(md5sum_cmd)
    times = {'rust': [], 'pmf': [], 'md5sum': [], 'reference': [], 'md5sum_1file': []}
    cpu = {k: [] for k in times}
    for i in range(a.val_rounds):
        order = ['md5sum', 'rust', 'pmf', 'reference', 'md5sum_1file']
        if i % 2:
            order.reverse()
        for what in order:
            if what == 'rust':
                out, _, c = run_json([env.example, 'validate', '--dir', root, '--strict'])
                times['rust'].append(out['seconds'][0])
                cpu['rust'].append(c)
            elif what == 'pmf' and env.pmf:
                w, c = run_timed([env.pmf, 'validate', root])
                times['pmf'].append(w)
                cpu['pmf'].append(c)
            elif what == 'md5sum':
                w, c = run_timed(md5sum_cmd)
                times['md5sum'].append(w)
                cpu['md5sum'].append(c)
            elif what == 'md5sum_1file':
                w, c = run_timed(md5sum_1)
                times['md5sum_1file'].append(w)
            elif what == 'reference' and not a.skip_reference and (i < a.ref_rounds):
                out, _, c = run_json([env.python, os.path.join(HERE, 'workloads.py'), '--impl', 'reference', 'validate',
                                      '--dir', root, '--strict'])
                times['reference'].append(out['seconds'][0])
                cpu['reference'].append(c)
        log('  round %d: %s' % (i + 1, ', '.join('%s %s' % (k, fmt_s(v[-1])) for k, v in times.items() if v)))
    results['validate'] = {'bytes': nbytes, 'files': len(meta_files), 'seconds': times, 'cpu_seconds': cpu}
    md5 = median_mbs(nbytes, times['md5sum'])
    ref = median_mbs(nbytes, times['reference']) if times['reference'] else None
    label = 'strict validation %d × %d MiB (warm cache)' % (count, size)
    ref_desc = '%s, %s' % (spread(times['reference']), fmt_mbs(ref)) if ref else 'n/a'
    table.row('%s: `md5sum` × %d in parallel (the limit)' % (label, env.nproc), '', '%s, %s' % (spread(times['md5sum']), fmt_mbs(md5)),
              '', '', None)
    for name, key in (('Rust library', 'rust'), ('`pmf validate`', 'pmf')):
        if not times[key]:
            table.row('%s: %s' % (label, name), ref_desc, 'pmf not built', 'n/a', '≥ 90% of md5sum', None)
            continue
        ours = median_mbs(nbytes, times[key])
        # Paired per round (md5sum and ours run next to each other), so that a change of load on
        # the shared cores affects both sides of each ratio; the verdict is on their median.
        paired = [m / o for m, o in zip(times['md5sum'], times[key])]
        frac = statistics.median(paired)
        # CPU time spent per byte, independent of how the shared cores were scheduled.
        cpu_frac = statistics.median(cpu['md5sum']) / statistics.median(cpu[key])
        table.row('%s: %s' % (label, name), ref_desc,
                  '%s, %s; **%.0f%% of md5sum** (rounds: %s; CPU time per byte: %.0f%% of md5sum\'s efficiency)' % (
                      spread(times[key]), fmt_mbs(ours), frac * 100, ', '.join('%.0f%%' % (x * 100) for x in paired),
                      cpu_frac * 100),
                  fmt_ratio(ours / ref) if ref else 'n/a', '≥ 90% of md5sum', frac >= 0.9)
    one = median_mbs(os.path.getsize(meta_files[-1]), times['md5sum_1file'])
    table.row('&nbsp;&nbsp;(context) `md5sum` of one file, one core', '', '%s' % fmt_mbs(one), '', '', None)
    if not a.keep:
        shutil.rmtree(root, ignore_errors=True)


def w_load(env, tmp, table, results):
    a = env.args
    n = a.load_checkpoints
    root = os.path.join(tmp, 'load-model')
    log('load: creating a model with %d checkpoints' % n)
    run_json([env.example, 'make-model', '--dir', root, '--checkpoints', str(n), '--size', '16'])
    rust, _, _ = run_json([env.example, 'load', '--dir', root, '--repeat', str(a.load_repeat)])
    ref = None
    if not a.skip_reference:
        ref, _, _ = run_json([env.python, os.path.join(HERE, 'workloads.py'), '--impl', 'reference', 'load',
                              '--dir', root, '--repeat', str(a.ref_load_repeat)])
        if ref['checkpoints'] != n:
            raise RuntimeError('the reference loaded %d checkpoints, expected %d' % (ref['checkpoints'], n))
    py = None
    if env.bindings_available():
        py, _, _ = run_json([env.python, os.path.join(HERE, 'workloads.py'), '--impl', 'bindings', 'load',
                             '--dir', root, '--repeat', str(a.load_repeat)])
        if py.get('error'):
            py = None
    results['load'] = {'reference': ref, 'rust': rust, 'bindings': py}
    ref_med = statistics.median(ref['seconds']) if ref else None
    label = '`Model.load` non-strict, %d checkpoints' % n
    for name, out in (('Rust library', rust), ('Python bindings', py)):
        if out is None:
            table.row('%s: %s' % (label, name), spread(ref['seconds']) if ref else 'n/a', 'bindings not built', 'n/a', '≥ 50×', None)
            continue
        ratio = ref_med / statistics.median(out['seconds']) if ref_med else None
        table.row('%s: %s' % (label, name), spread(ref['seconds']) if ref else 'n/a', spread(out['seconds']), fmt_ratio(ratio),
                  '≥ 50×', None if ratio is None else ratio >= 50)
    if not a.keep:
        shutil.rmtree(root, ignore_errors=True)


def w_startup(env, tmp, table, results):
    a = env.args
    root = os.path.join(tmp, 'small-model')
    run_json([env.example, 'make-model', '--dir', root, '--checkpoints', '3', '--size', '1024'])
    ref_cmd = [env.python, '-c', 'from plums.model.validation import validate; validate(%r)' % root]
    # The reference must accept the model, or the comparison means nothing.
    subprocess.run(ref_cmd, check=True, capture_output=True)
    if not env.pmf:
        table.row('start-up: `pmf validate --quick` small model', 'n/a', 'pmf not built', 'n/a', '≥ 20×', None)
        return
    pmf_cmd = [env.pmf, 'validate', '--quick', root]
    subprocess.run(pmf_cmd, check=True, capture_output=True)
    runs = a.startup_runs
    if env.hyperfine:
        export = os.path.join(tmp, 'hyperfine.json')
        subprocess.run([env.hyperfine, '-N', '--warmup', '3', '--runs', str(runs), '--export-json', export,
                        ' '.join(pmf_cmd), ' '.join([env.python, '-c', "'from plums.model.validation import validate; validate(\"%s\")'" % root])],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(export) as f:
            data = json.load(f)['results']
        ours, ref = data[0]['times'], data[1]['times']
        tool = 'hyperfine'
    else:
        ours, ref = [], []
        for _ in range(runs):
            ours.append(run_timed(pmf_cmd)[0])
            ref.append(run_timed(ref_cmd)[0])
        tool = 'repeat'
    results['startup'] = {'tool': tool, 'pmf': ours, 'reference': ref}
    ratio = statistics.median(ref) / statistics.median(ours)
    table.row('start-up: `pmf validate --quick` vs `python -c` import + validate, small model (%s, %d runs)' % (tool, runs),
              spread(ref), spread(ours), fmt_ratio(ratio), '≥ 20×', ratio >= 20)


# ---------------------------------------------------------------- main

# The object-storage and the issue-11 training workloads; imported here, after the helpers
# above, which they import.
import s3_bench  # noqa: E402
import training_bench  # noqa: E402
import fleet_bench  # noqa: E402


def machine():
    cpu = 'unknown'
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    return cpu


def library_version():
    """The commit the library was built from, and which of its sources (the crates', the
    bindings') had uncommitted changes."""
    try:
        head = subprocess.run(['git', '-C', ROOT, 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True).stdout.strip()
        sources = ('crates/plums-model/src', 'crates/pmf/src', 'bindings/python/src', 'bindings/python/python')
        dirty = [d for d in sources if subprocess.run(['git', '-C', ROOT, 'status', '--porcelain', '--', d],
                                                      capture_output=True, text=True).stdout.strip()]
        return head + (' + uncommitted changes in %s' % ', '.join(dirty) if dirty else '')
    except OSError:
        return 'unknown'


def busiest():
    """The processes using the most CPU right now (other builds on the shared machine)."""
    r = subprocess.run(['ps', '-eo', 'pcpu=,comm=', '--sort=-pcpu'], capture_output=True, text=True)
    procs = []
    for line in r.stdout.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and parts[1] not in ('ps', 'python', 'python3', 'compare.py') and float(parts[0]) >= 5:
            procs.append('%s %s%%' % (parts[1], parts[0]))
    return ', '.join(procs[:4]) or 'none above 5% CPU'


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--quick', action='store_true', help='smaller sizes: 30 epochs x 1 MiB, 8 x 32 MiB, 2,000 checkpoints, fewer rounds')
    p.add_argument('--only', default='training,validate,load,startup',
                   help='comma-separated workloads to run: training, validate, load, startup, the object-storage '
                        'ones, s3 (all five) or s3_training, s3_validate, s3_download_validate, s3_cp, s3_background, '
                        'and those of issue 11, background (both) or background_save, retention, '
                        'and that of issue 12, fleet (fleet_ls)')
    p.add_argument('--rounds', type=int, help='repetitions of our side (and of md5sum) (default 3, --quick 2)')
    p.add_argument('--val-rounds', type=int, help='rounds of the validation workload (default 5, --quick 3)')
    p.add_argument('--ref-rounds', type=int, default=None, help='rounds of the validation workload that also run the reference (default 3)')
    p.add_argument('--epochs', type=int)
    p.add_argument('--size-mib', type=int)
    p.add_argument('--val-files', type=int, default=8)
    p.add_argument('--val-mib', type=int)
    p.add_argument('--s3-val-mib', type=int, help='checkpoint size of the remote model of s3_validate (default 64, --quick 16)')
    p.add_argument('--s3-cp-mib', type=int, help='checkpoint size of the model s3_cp uploads (default 1024, --quick 256)')
    p.add_argument('--bg-epochs', type=int, help='background_save: epochs of each loop (default 6, --quick 3)')
    p.add_argument('--bg-mib', type=int, help='background_save: size of each new checkpoint (default 512, --quick 64)')
    p.add_argument('--bg-rounds', type=int, default=1, help='background_save, s3_background: rounds of the two loops (default 1)')
    p.add_argument('--bg-queued', type=int, default=2, help='background_save, s3_background: saves timed queued behind an in-flight one (default 2)')
    p.add_argument('--s3-bg-epochs', type=int, help='s3_background: epochs of each loop (default 6, --quick 3)')
    p.add_argument('--s3-bg-mib', type=int, help='s3_background: size of each new checkpoint (default 512, --quick 64)')
    p.add_argument('--retention-epochs', type=int, help='retention: epochs of the loop (default 100, --quick 30)')
    p.add_argument('--retention-mib', type=int, default=1, help='retention: checkpoint size (default 1)')
    p.add_argument('--retention-keep', type=int, default=3, help='retention: Retention(last=N) (default 3)')
    fleet_bench.add_arguments(p)
    p.add_argument('--load-checkpoints', type=int)
    p.add_argument('--startup-runs', type=int)
    p.add_argument('--scaling-counts', default='10,100,1000', help='checkpoint counts of the save-scaling context row')
    p.add_argument('--skip-reference', action='store_true', help='do not run the reference (ratios become n/a)')
    p.add_argument('--tmpdir', default=None, help='where to create the data (default: $TMPDIR or /tmp; must be on the disk to measure)')
    p.add_argument('--keep', action='store_true', help='keep the created models')
    p.add_argument('--out', help='also write the Markdown report to this file')
    p.add_argument('--json', help='write every raw timing to this JSON file')
    p.add_argument('--python', default=os.environ.get('PYTHON', os.path.join(ROOT, '.venv', 'bin', 'python')))
    a = p.parse_args()
    q = a.quick
    a.rounds = a.rounds or (2 if q else 3)
    a.val_rounds = a.val_rounds or (3 if q else 5)
    a.ref_rounds = min(a.val_rounds, 3) if a.ref_rounds is None else a.ref_rounds
    a.epochs = a.epochs or (30 if q else 100)
    a.size_mib = a.size_mib or (1 if q else 4)
    a.val_mib = a.val_mib or (32 if q else 256)
    a.s3_val_mib = a.s3_val_mib or (16 if q else 64)
    a.s3_cp_mib = a.s3_cp_mib or (256 if q else 1024)
    a.load_checkpoints = a.load_checkpoints or (2000 if q else 10000)
    a.bg_epochs = a.bg_epochs or (3 if q else 6)
    a.bg_mib = a.bg_mib or (64 if q else 512)
    a.s3_bg_epochs = a.s3_bg_epochs or a.bg_epochs
    a.s3_bg_mib = a.s3_bg_mib or (64 if q else 512)
    a.retention_epochs = a.retention_epochs or (30 if q else 100)
    a.load_repeat = 10
    a.ref_load_repeat = 1 if q else 2
    a.startup_runs = a.startup_runs or (10 if q else 20)
    fleet_bench.set_defaults(a)
    workloads = {'training': w_training, 'validate': w_validate, 'load': w_load, 'startup': w_startup}
    workloads.update(s3_bench.WORKLOADS)
    workloads.update(training_bench.WORKLOADS)
    workloads.update(fleet_bench.WORKLOADS)
    groups = dict(s3_bench.GROUPS, **training_bench.GROUPS, **fleet_bench.GROUPS)
    names = [n for name in a.only.split(',') for n in groups.get(name.strip(), [name.strip()])]
    unknown = [n for n in names if n not in workloads]
    if unknown:
        p.error('unknown workload %s: expected %s, or a group: %s' % (', '.join(unknown), ', '.join(workloads), ', '.join(groups)))
    # No process of the run asks a cloud instance's metadata service for credentials.
    os.environ['AWS_EC2_METADATA_DISABLED'] = 'true'
    # A terminated run still stops its S3 server and removes its data (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    env = Env(a)
    tmp = tempfile.mkdtemp(prefix='plums-compare-', dir=a.tmpdir)
    table = Table()
    results = {}
    start_date = time.strftime('%Y-%m-%d %H:%M:%S %Z')
    load_before = os.getloadavg()
    busy_before = busiest()
    started = time.time()
    durations = {}
    try:
        for name in names:
            t = time.time()
            workloads[name](env, tmp, table, results)
            durations[name] = time.time() - t
            log('%s took %.0f s' % (name, durations[name]))
    finally:
        s3_server = env.s3
        s3_bench.stop_server(env)
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log('kept %s' % tmp)
    load_after = os.getloadavg()
    busy_after = busiest()
    df = subprocess.run(['df', '-T', a.tmpdir or tempfile.gettempdir()], capture_output=True, text=True).stdout.strip().splitlines()[-1].split()
    conditions = {
        'date': start_date, 'nproc': env.nproc, 'cpu': machine(),
        'filesystem': '%s %s' % (df[0], df[1]) if len(df) > 1 else '?', 'loadavg_before': load_before, 'loadavg_after': load_after,
        'busy_before': busy_before, 'busy_after': busy_after, 'library': library_version(),
        'duration_s': time.time() - started, 'workload_s': durations, 'python': platform.python_version(), 'quick': q,
        'bindings': env.bindings_available(), 'pmf': env.pmf is not None, 'timer': 'hyperfine' if env.hyperfine else 'repeat',
        's3_server': s3_server.version if s3_server else None,
    }
    results['conditions'] = conditions
    report = [
        '## benches/compare%s — %s' % (' --quick' if q else '', conditions['date']),
        '',
        'Machine: %d cores (%s), %s; load average %.2f before, %.2f after; run took %.0f s.' % (
            env.nproc, conditions['cpu'], conditions['filesystem'], load_before[0], load_after[0], conditions['duration_s']),
        'Time per workload: %s.' % ', '.join('%s %.0f s' % kv for kv in durations.items()),
        'Library: commit %s%s.' % (conditions['library'], '' if os.environ.get('PLUMS_COMPARE_BUILT') == '1'
                                   else ' (binaries not rebuilt by this run: --no-build)'),
        'Other processes at the start: %s; at the end: %s.' % (busy_before, busy_after),
        'Ours saves durably (fsync of every new file, folder and the exchange); the reference does not fsync.',
        'Times are median (min–max, n runs); a ratio is reference ÷ ours for times, ours ÷ reference for throughput.',
    ]
    if s3_server:
        report.append('Object storage: SeaweedFS `weed mini` %s on 127.0.0.1 (scripts/s3-server, -master.telemetry=false), started for this run; '
                      'in its rows the "reference" column holds the baseline the row names.' % s3_server.version)
    if q:
        report.append('`--quick`: smaller sizes than the targets are set for; the ratios are a smoke test, not a verdict.')
    report += [
        '',
        table.markdown(),
        '',
    ]
    met = [t for t in table.targets if t[2] is not None]
    missed = [t[0] for t in met if not t[2]]
    report.append('Targets met: %d of %d measured%s.' % (len(met) - len(missed), len(met),
                  (', %d not measured' % (len(table.targets) - len(met))) if len(table.targets) > len(met) else ''))
    text = '\n'.join(report)
    print(text)
    if a.out:
        with open(a.out, 'w') as f:
            f.write(text + '\n')
    if a.json:
        with open(a.json, 'w') as f:
            json.dump(results, f, indent=1)


if __name__ == '__main__':
    main()
