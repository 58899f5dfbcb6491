"""The many-models row of issue 12 in benches/compare: ``pmf ls`` over a folder of models.
``--only fleet`` runs it (workload ``fleet_ls``).

The tree: N models (default 10,000; ``--quick`` 1,000; ``--fleet-models``) under
``team-TT/run-RRR/model-K`` (10 models per run, 10 runs per team), each written directly by
this script as the reference ``plums`` 0.5.2 saves one (its ``metadata.yaml`` key order and
shape, ``initialisation: null``, a configuration file at the root, ``data/build_parameters.yaml``,
an empty ``data/initialisation/``) with 10 checkpoints of 1 KiB (``--fleet-checkpoints``) in
``data/checkpoints/`` whose real MD5s the metadata records; every tenth model was initialised
from a weight file (``data/initialisation/imagenet.bin``). 1% of the models are invalid
(every hundredth), in turn: a registered checkpoint file missing, a training status the format
does not know (``done``), a ``metadata.yaml`` cut in the middle (not YAML). A few files and a
folder that are not models lie beside the teams.

Rows (page cache warm: each command runs once before its 3 timed runs, the reference last):
  ``pmf ls --json LOCATION`` (release build, quick check, stdout to /dev/null), whole process;
  ``find LOCATION -name metadata.yaml | xargs cat > /dev/null`` (the cost of reading every
  metadata file), whole pipeline; the reference script: a Python process that walks LOCATION
  with ``os.walk`` and, in each folder holding ``metadata.yaml``, calls
  ``plums.model.Model.load(path, strict=False)`` in try/except, counting the failures, and does
  not walk below a model (this file, ``reference-walk``), whole process, once (``--fleet-ref-sample
  F`` loads a random fraction F of the models instead, and the row says so).
Targets: pmf ls >= 30x faster than the reference script; pmf ls <= 3x the find | xargs cat time.
The run fails unless pmf ls finds every model and exactly the invalid ones, and the reference
fails on those (and loads the others).

The child side: ``fleet_bench.py make LOCATION --models N`` (the tree; prints JSON) and
``fleet_bench.py reference-walk LOCATION [--sample F --seed S]`` (prints JSON).
"""
import hashlib
import json
import os
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import time

if __name__ != '__main__':
    # The driver side, imported by compare.py after its helpers.
    from compare import fmt_ratio, fmt_s, log, spread

MODELS_PER_RUN = 10
RUNS_PER_TEAM = 10
INVALID_EVERY = 100
INVALID_KINDS = ('missing checkpoint file', 'unknown status', 'metadata.yaml not YAML')
CHECKPOINT_BYTES = 1024

CONFIG = '# fleet bench configuration\nlr = {lr}\nbatch_size = 32\nbackbone = "resnet50"\n'
BUILD_PARAMETERS = 'classes:\n- car\n- person\n- bicycle\ninput:\n  height: 480\n  width: 640\nlr: {lr}\nnum_classes: 3\n'


# ---------------------------------------------------------------- the tree (child side)

def model_paths(n):
    """The relative paths of the N models, in creation order."""
    per_team = MODELS_PER_RUN * RUNS_PER_TEAM
    return ['team-%02d/run-%03d/model-%d' % (i // per_team, (i // MODELS_PER_RUN) % RUNS_PER_TEAM, i % MODELS_PER_RUN)
            for i in range(n)]


def metadata_text(i, config_hash, checkpoints, init):
    """metadata.yaml of model ``i`` as the reference writes it (keys sorted, nulls written)."""
    start = 1795881894.5482774 + i
    lines = [
        'format:',
        '  producer:',
        '    name: fleet_trainer',
        '    version:',
        '      format: py_pa',
        '      value: 1.%d.0' % (i % 7),
        '  version: 1.0.0',
        'model:',
        '  configuration:',
        '    hash: %s' % config_hash,
        '    path: config.py',
        '  id: fleet-%05d' % i,
    ]
    if init:
        lines += ['  initialisation:', '    file:', '      hash: %s' % init[1], '      name: imagenet',
                  '      path: data/initialisation/%s' % init[0]]
    else:
        lines.append('  initialisation: null')
    lines += ['  name: model-%d' % i, '  training:', '    checkpoints:']
    for epoch, name, digest in checkpoints:
        lines += ['      %d:' % epoch, '        epoch: %d' % epoch, '        hash: %s' % digest,
                  '        path: data/checkpoints/%s' % name]
    last = checkpoints[-1][0]
    end = start + 60.0 * last
    lines += [
        '    end_epoch: %d' % last,
        '    end_time: %r' % end,
        '    latest: %d' % last,
        '    latest_epoch: %d' % last,
        '    latest_time: %r' % end,
        '    start_epoch: 0',
        '    start_time: %r' % start,
        '    status: finished',
    ]
    return '\n'.join(lines) + '\n'


def write(path, data):
    with open(path, 'wb') as f:
        f.write(data)


def make_fleet(root, n, checkpoints=10, seed=12):
    """Write the tree of N models under ``root`` (see the module's docstring); return what it
    holds: the model count and the relative paths of the invalid ones, by kind."""
    rng = random.Random(seed)
    os.makedirs(root)
    invalid = {}
    for i, rel in enumerate(model_paths(n)):
        d = os.path.join(root, rel)
        for sub in ('data/checkpoints', 'data/initialisation'):
            os.makedirs(os.path.join(d, sub))
        lr = '%.4f' % (0.001 * (1 + i % 50))
        config = CONFIG.format(lr=lr).encode()
        write(os.path.join(d, 'config.py'), config)
        write(os.path.join(d, 'data', 'build_parameters.yaml'), BUILD_PARAMETERS.format(lr=lr).encode())
        ckpts = []
        for epoch in range(1, checkpoints + 1):
            data = rng.randbytes(CHECKPOINT_BYTES)
            name = 'epoch_%d.pt' % epoch
            write(os.path.join(d, 'data', 'checkpoints', name), data)
            ckpts.append((epoch, name, hashlib.md5(data).hexdigest()))
        init = None
        if i % 10 == 5:
            data = rng.randbytes(CHECKPOINT_BYTES)
            write(os.path.join(d, 'data', 'initialisation', 'imagenet.bin'), data)
            init = ('imagenet.bin', hashlib.md5(data).hexdigest())
        text = metadata_text(i, hashlib.md5(config).hexdigest(), ckpts, init)
        kind = None
        if i % INVALID_EVERY == INVALID_EVERY // 2:
            kind = INVALID_KINDS[(i // INVALID_EVERY) % len(INVALID_KINDS)]
            if kind == 'missing checkpoint file':
                os.remove(os.path.join(d, 'data', 'checkpoints', ckpts[len(ckpts) // 2][1]))
            elif kind == 'unknown status':
                text = text.replace('status: finished', 'status: done')
            else:
                text = text[:len(text) // 2] + '\n  - [unclosed: {\n'
            invalid.setdefault(kind, []).append(rel)
        write(os.path.join(d, 'metadata.yaml'), text.encode())
    # What is not a model: files beside the teams, a folder of notes with no model in it.
    write(os.path.join(root, 'README.txt'), b'models of the fleet bench\n')
    os.makedirs(os.path.join(root, 'notes', '2026'))
    write(os.path.join(root, 'notes', '2026', 'plan.yaml'), b'plan: none\n')
    return {'models': n, 'checkpoints_per_model': checkpoints, 'invalid': invalid,
            'invalid_count': sum(len(v) for v in invalid.values())}


def reference_walk(location, sample=1.0, seed=0):
    """The reference script: os.walk, ``Model.load(path, strict=False)`` of each folder holding
    metadata.yaml (of a random fraction ``sample`` of them), not walking below a model."""
    t0 = time.perf_counter()
    from plums.model import Model
    import_s = time.perf_counter() - t0
    rng = random.Random(seed)
    found = loaded = 0
    failed = []
    t = time.perf_counter()
    for dirpath, dirnames, filenames in os.walk(location):
        if 'metadata.yaml' in filenames:
            dirnames[:] = []
            found += 1
            if sample < 1.0 and rng.random() >= sample:
                continue
            loaded += 1
            try:
                Model.load(dirpath, strict=False)
            except Exception as e:  # noqa: BLE001 -- counting what the reference refuses
                failed.append((os.path.relpath(dirpath, location), type(e).__name__))
        else:
            dirnames.sort()
    return {'found': found, 'loaded': loaded, 'failed': failed, 'sample': sample, 'import_s': import_s,
            'walk_s': time.perf_counter() - t}


# ---------------------------------------------------------------- the rows (driver side)

def timed(cmd, expect=(0,), stdout=subprocess.DEVNULL, **kw):
    """Run a command; return (wall seconds, CPU seconds of the children, stdout or None). Exit
    codes outside ``expect`` are an error (``pmf ls`` exits 1 when a model is invalid)."""
    import resource
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    r = subprocess.run(cmd, stdout=stdout, stderr=subprocess.PIPE, **kw)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode not in expect:
        raise RuntimeError('%s exited with %d: %s' % (cmd if isinstance(cmd, str) else ' '.join(cmd), r.returncode,
                                                      r.stderr.decode(errors='replace')[-2000:]))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, r.stdout


def check_listing(doc, made):
    """pmf ls --json must find every model of the tree, and exactly the invalid ones."""
    models = doc['models']
    invalid = sorted(m['relative_path'] for m in models if not m['valid'])
    expected = sorted(p for paths in made['invalid'].values() for p in paths)
    if len(models) != made['models'] or invalid != expected:
        raise RuntimeError('pmf ls found %d models (expected %d), %d invalid (expected %d): unexpected %s, missing %s' % (
            len(models), made['models'], len(invalid), len(expected), sorted(set(invalid) - set(expected))[:5],
            sorted(set(expected) - set(invalid))[:5]))
    return len(models), len(invalid)


def check_reference(out, made):
    """The reference script must find every model and fail on the invalid ones only."""
    failed = sorted(rel for rel, _ in out['failed'])
    expected = set(p for paths in made['invalid'].values() for p in paths)
    if out['found'] != made['models'] or (out['sample'] >= 1 and failed != sorted(expected)) or not set(failed) <= expected:
        raise RuntimeError('the reference script found %d models (expected %d) and failed on %d (expected %d): %s' % (
            out['found'], made['models'], len(failed), len(expected), failed[:5]))
    return out['found'], len(failed)


def w_fleet_ls(env, tmp, table, results):
    a = env.args
    n, ckpts, rounds, sample = a.fleet_models, a.fleet_checkpoints, a.fleet_rounds, a.fleet_ref_sample
    label = '`pmf ls --json` of %s models × %d checkpoints (1%% invalid), page cache warm, whole process' % (
        format(n, ','), ckpts)
    if not env.pmf:
        table.row('%s vs the reference script' % label, 'n/a', 'pmf not built', 'n/a', '≥ 30×', None)
        return
    loc = os.path.join(tmp, 'fleet')
    shutil.rmtree(loc, ignore_errors=True)
    log('fleet_ls: writing %d models x %d checkpoints under %s' % (n, ckpts, loc))
    t = time.perf_counter()
    made = make_fleet(loc, n, ckpts)
    make_s = time.perf_counter() - t
    du = subprocess.run(['du', '-sk', loc], capture_output=True, text=True).stdout.split()
    files = sum(len(f) for _, _, f in os.walk(loc))
    log('  %d files, %s KiB, written in %.1f s; %d invalid models' % (files, du[0] if du else '?', make_s, made['invalid_count']))
    pmf_cmd = [env.pmf, 'ls', '--json', loc]
    find_cmd = 'find %s -name metadata.yaml | xargs cat > /dev/null' % shlex.quote(loc)
    ref_cmd = [env.python, os.path.abspath(__file__), 'reference-walk', loc, '--sample', str(sample)]
    # Warm-up: one run of each command; pmf's listing is checked.
    timed(['bash', '-c', find_cmd])
    _, _, out = timed(pmf_cmd, expect=(1,), stdout=subprocess.PIPE)
    found, invalid = check_listing(json.loads(out), made)
    log('  pmf ls: %d models, %d invalid (as made)' % (found, invalid))
    runs = {'pmf': [], 'find': []}
    for i in range(rounds):
        for name in (('find', 'pmf') if i % 2 == 0 else ('pmf', 'find')):
            if name == 'pmf':
                runs['pmf'].append(timed(pmf_cmd, expect=(1,))[:2])
            else:
                runs['find'].append(timed(['bash', '-c', find_cmd])[:2])
        log('  round %d: pmf ls %s, find | xargs cat %s' % (i + 1, fmt_s(runs['pmf'][-1][0]), fmt_s(runs['find'][-1][0])))
    log('  the reference script (os.walk + Model.load(strict=False))%s: about %.0f s expected' % (
        '' if sample >= 1 else ' on a %.0f%% sample' % (sample * 100), 0.014 * n * sample))
    ref_wall, ref_cpu, out = timed(ref_cmd, stdout=subprocess.PIPE)
    ref = json.loads(out.decode().strip().splitlines()[-1])
    ref_found, ref_failed = check_reference(ref, made)
    log('  reference: %s (walk and loads %s), found %d, failed on %d of %d loaded' % (
        fmt_s(ref_wall), fmt_s(ref['walk_s']), ref_found, ref_failed, ref['loaded']))
    pmf_wall = [w for w, _ in runs['pmf']]
    find_wall = [w for w, _ in runs['find']]
    pmf_med, find_med = statistics.median(pmf_wall), statistics.median(find_wall)
    if sample >= 1:
        ref_time, ref_desc = ref_wall, '%s (one run; walk and loads %s)' % (fmt_s(ref_wall), fmt_s(ref['walk_s']))
    else:
        # Start-up and import once, the walk and loads scaled from the sample to every model.
        ref_time = ref_wall - ref['walk_s'] + ref['walk_s'] * n / max(1, ref['loaded'])
        ref_desc = 'about %s (estimated: %d models loaded, a %.0f%% sample, in %s)' % (
            fmt_s(ref_time), ref['loaded'], sample * 100, fmt_s(ref_wall))
    ratio = ref_time / pmf_med
    table.row('%s vs the reference script: `os.walk` + `plums.model.Model.load(path, strict=False)` of each model '
              '(try/except; not walked below a model), whole process%s' % (label, '' if sample >= 1 else ', **sampled**'),
              ref_desc, spread(pmf_wall), fmt_ratio(ratio), '≥ 30×', ratio >= 30)
    vs_find = pmf_med / find_med
    table.row('%s vs `find LOCATION -name metadata.yaml | xargs cat > /dev/null` (reference column: that pipeline)' % label,
              spread(find_wall), spread(pmf_wall), 'pmf ÷ find: %.2f (rounds: %s)' % (
                  vs_find, ', '.join('%.2f' % (p / f) for p, f in zip(pmf_wall, find_wall))),
              '≤ 3× find', vs_find <= 3)
    table.row('&nbsp;&nbsp;(context) CPU time (user + system) of the same runs; %d cores' % env.nproc,
              'find | xargs cat: %s; reference: %s' % (spread([c for _, c in runs['find']]), fmt_s(ref_cpu)),
              'pmf ls: %s' % spread([c for _, c in runs['pmf']]), '', '', None)
    table.row('&nbsp;&nbsp;(context) what was found: pmf ls %d models, %d invalid; the reference script %d models, '
              'failed on %d of %d loaded (the tree: %d files, %s KiB, written in %.1f s)' % (
                  found, invalid, ref_found, ref_failed, ref['loaded'], files, du[0] if du else '?', make_s),
              '', '', '', 'counts as made', True)
    results['fleet_ls'] = {'models': n, 'checkpoints': ckpts, 'invalid': made['invalid'], 'files': files,
                           'make_s': make_s, 'pmf': runs['pmf'], 'find': runs['find'],
                           'reference': dict(ref, wall_s=ref_wall, cpu_s=ref_cpu, estimated_s=ref_time),
                           'pmf_over_find': vs_find, 'reference_over_pmf': ratio}
    if not a.keep:
        shutil.rmtree(loc, ignore_errors=True)


def add_arguments(p):
    """The options of these rows, on compare.py's parser."""
    p.add_argument('--fleet-models', type=int, help='fleet_ls: models in the tree (default 10,000, --quick 1,000)')
    p.add_argument('--fleet-checkpoints', type=int, default=10, help='fleet_ls: checkpoints per model (default 10)')
    p.add_argument('--fleet-rounds', type=int, default=3, help='fleet_ls: timed runs of pmf ls and of find | xargs cat (default 3)')
    p.add_argument('--fleet-ref-sample', type=float, default=1.0,
                   help='fleet_ls: fraction of the models the reference script loads (default 1: all; the row then says it is estimated)')


def set_defaults(a):
    a.fleet_models = a.fleet_models or (1000 if a.quick else 10000)


WORKLOADS = {'fleet_ls': w_fleet_ls}
GROUPS = {'fleet': list(WORKLOADS)}


def child_main(argv):
    import argparse
    p = argparse.ArgumentParser(prog='fleet_bench.py')
    sub = p.add_subparsers(dest='command', required=True)
    m = sub.add_parser('make', help='write the tree of models')
    m.add_argument('location')
    m.add_argument('--models', type=int, default=10000)
    m.add_argument('--checkpoints', type=int, default=10)
    m.add_argument('--seed', type=int, default=12)
    r = sub.add_parser('reference-walk', help='the reference script')
    r.add_argument('location')
    r.add_argument('--sample', type=float, default=1.0)
    r.add_argument('--seed', type=int, default=0)
    a = p.parse_args(argv)
    if a.command == 'make':
        t = time.perf_counter()
        out = make_fleet(a.location, a.models, a.checkpoints, a.seed)
        out['seconds'] = time.perf_counter() - t
    else:
        out = reference_walk(a.location, a.sample, a.seed)
    print(json.dumps(out))


if __name__ == '__main__':
    child_main(sys.argv[1:])
