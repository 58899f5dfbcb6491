"""The object-storage rows of benches/compare: ``--only s3`` runs the five, or name them
(``s3_training``, ``s3_validate``, ``s3_download_validate``, ``s3_cp``, ``s3_background``). All run against one
SeaweedFS server that scripts/s3-server starts on 127.0.0.1 in the run's temporary folder on
first use; compare.py stops it at the end of the run, also when a workload failed.

Nothing leaves the machine: before the server starts, this process drops the caller's AWS_*
variables and proxy settings, points the AWS configuration files at /dev/null and sets
AWS_EC2_METADATA_DISABLED=true, so that every process of the run (ours, boto3, the reference)
talks to the loopback server only. Credentials reach the children through their environment
(AWS_* for pmf, PMF_TEST_S3_* for workloads.py), never on a command line.

Rows (the "reference" column holds the baseline that the row names):
  s3_training           N epochs x M MiB, save after every epoch to s3://BUCKET/PREFIX with the
                        Python bindings, against boto3 put_object of the same files and a 2 KiB
                        metadata object per epoch: total save time (ours <= 1.3x boto3) and
                        save N / save 10 (medians of saves N-10..N / 5..15, <= 1.5).
  s3_validate           strict validation of a remote model (8 checkpoints x 64 MiB) with
                        ``pmf validate`` and a fresh cache (cold: >= 90% of the throughput of
                        boto3 downloading the checkpoints with 2 threads while hashing them with
                        hashlib.md5, streamed, not written), then again with that cache (warm:
                        >= 20x faster than cold).
  s3_download_validate  the same model: boto3 download of the whole folder, then the reference's
                        ``validate(path, strict=True)``, against ``pmf validate`` cold (>= 2x).
  s3_cp                 peak RSS of ``pmf cp LOCAL s3://...`` of a model with one 1 GiB
                        checkpoint (<= 200 MiB), then ``pmf validate`` of the copy.
  s3_background         issue 11: the blocking time of ``model.save(s3://..., background=True)``
                        of a new 512 MiB checkpoint each epoch (idle queue, and queued behind an
                        in-flight save) against the synchronous save of the same data to
                        ``s3://`` (<= 5%); see benches/training_bench.py (``blocking-save``).
"""
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import uuid

from compare import HERE, MIB, ROOT, fmt_mbs, fmt_ratio, fmt_s, log, median_mbs, run_json, run_timed, spread
import training_bench  # noqa: E402 -- after compare's helpers, which it imports too

S3_SERVER = os.path.join(ROOT, 'scripts', 's3-server')
WORKLOADS_PY = os.path.join(HERE, 'workloads.py')
PROXY_VARIABLES = ('http_proxy', 'https_proxy', 'all_proxy', 'ftp_proxy')


# ---------------------------------------------------------------- the server

def isolate_environment():
    """Make every process of the run reach the loopback server only (see the module's docstring)."""
    for name in list(os.environ):
        if name.startswith('AWS_') or name.lower() in PROXY_VARIABLES:
            del os.environ[name]
    os.environ.update({'AWS_EC2_METADATA_DISABLED': 'true', 'AWS_CONFIG_FILE': os.devnull,
                       'AWS_SHARED_CREDENTIALS_FILE': os.devnull, 'NO_PROXY': '127.0.0.1,localhost',
                       'no_proxy': '127.0.0.1,localhost'})


def weed_version():
    """``weed version`` of the binary scripts/s3-server runs (PMF_WEED, .venv/bin/weed, or on PATH)."""
    weed = os.environ.get('PMF_WEED') or os.path.join(ROOT, '.venv', 'bin', 'weed')
    if not os.access(weed, os.X_OK):
        weed = shutil.which('weed') or 'weed'
    try:
        out = subprocess.run([weed, 'version'], capture_output=True, text=True).stdout.strip()
    except OSError:
        out = ''
    return out or 'unknown version'


class Server:
    """A SeaweedFS server started by ``scripts/s3-server start FOLDER``, and what the S3 rows
    share: the remote models they made (``models``)."""

    def __init__(self, folder):
        self.folder = folder
        r = subprocess.run([S3_SERVER, 'start', folder], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError('scripts/s3-server start failed (%d):\n%s' % (r.returncode, r.stderr[-3000:]))
        self.exports = dict(line[len('export '):].split('=', 1) for line in r.stdout.splitlines()
                            if line.startswith('export PMF_TEST_S3_'))
        self.endpoint = self.exports['PMF_TEST_S3_ENDPOINT']
        self.bucket = self.exports['PMF_TEST_S3_BUCKET']
        self.models = {}
        self.version = weed_version()
        log('s3: weed mini -master.telemetry=false (%s) serves %s, bucket %s' % (self.version, self.endpoint, self.bucket))

    def stop(self):
        subprocess.run([S3_SERVER, 'stop', self.folder], check=False)

    def child_env(self, cache=None):
        """The environment of a child process using the server: AWS_* (pmf), PMF_TEST_S3_*
        (workloads.py), and PMF_CACHE_DIR when ``cache`` is given."""
        env = dict(os.environ, **self.exports)
        env.update({'AWS_ENDPOINT_URL': self.endpoint, 'AWS_ACCESS_KEY_ID': self.exports['PMF_TEST_S3_ACCESS_KEY_ID'],
                    'AWS_SECRET_ACCESS_KEY': self.exports['PMF_TEST_S3_SECRET_ACCESS_KEY'],
                    'AWS_REGION': self.exports['PMF_TEST_S3_REGION'], 'AWS_ALLOW_HTTP': 'true'})
        if cache:
            env['PMF_CACHE_DIR'] = cache
        return env

    def client(self):
        import boto3
        e = self.exports
        return boto3.client('s3', endpoint_url=self.endpoint, region_name=e['PMF_TEST_S3_REGION'],
                            aws_access_key_id=e['PMF_TEST_S3_ACCESS_KEY_ID'],
                            aws_secret_access_key=e['PMF_TEST_S3_SECRET_ACCESS_KEY'])

    def url(self, prefix):
        return 's3://%s/%s' % (self.bucket, prefix)

    def upload(self, folder, prefix):
        """Every file under ``folder`` to ``prefix/<relative path>``, one put_object each (so that
        each ETag is the MD5); the bytes uploaded."""
        client, total = self.client(), 0
        for base, _, names in os.walk(folder):
            for name in sorted(names):
                path = os.path.join(base, name)
                key = prefix + '/' + os.path.relpath(path, folder).replace(os.sep, '/')
                with open(path, 'rb') as f:
                    client.put_object(Bucket=self.bucket, Key=key, Body=f)
                total += os.path.getsize(path)
        return total

    def delete(self, prefix):
        """Every object whose key starts with ``prefix``."""
        client = self.client()
        for page in client.get_paginator('list_objects_v2').paginate(Bucket=self.bucket, Prefix=prefix):
            keys = [{'Key': o['Key']} for o in page.get('Contents', [])]
            if keys:
                client.delete_objects(Bucket=self.bucket, Delete={'Objects': keys, 'Quiet': True})


def server(env, tmp):
    """The run's server (``env.s3``), started on first use."""
    if env.s3 is None:
        isolate_environment()
        env.s3 = Server(os.path.join(tmp, 's3-server'))
    return env.s3


def stop_server(env):
    """Stop the run's server if one was started (compare.py, at the end of the run)."""
    if env.s3 is not None:
        env.s3.stop()
        env.s3 = None


def fresh_prefix(name):
    return 'pmf-bench/%s-%d-%s' % (name, os.getpid(), uuid.uuid4().hex[:8])


def remote_model(env, tmp, count, size_mib):
    """The prefix of a remote model with ``count`` checkpoints of ``size_mib`` MiB (random bytes),
    made locally by bench_workloads make-model and uploaded with boto3 once per run (s3_validate
    and s3_download_validate use the same one); and the bytes of its checkpoints."""
    s = server(env, tmp)
    if (count, size_mib) not in s.models:
        root = os.path.join(tmp, 's3-model-local')
        log('s3: uploading a model of %d checkpoints x %d MiB' % (count, size_mib))
        run_json([env.example, 'make-model', '--dir', root, '--checkpoints', str(count), '--size', str(size_mib * MIB)])
        prefix = fresh_prefix('strict')
        s.upload(root, prefix)
        shutil.rmtree(root, ignore_errors=True)
        s.models[(count, size_mib)] = prefix
    return s.models[(count, size_mib)], count * size_mib * MIB


def pmf_validate_cold(env, url, cache):
    """Wall seconds of ``pmf validate URL`` (strict, the default) with the cache folder ``cache``,
    created empty; its CPU seconds."""
    shutil.rmtree(cache, ignore_errors=True)
    os.makedirs(cache)
    os.sync()
    return run_timed([env.pmf, 'validate', url], env=env.s3.child_env(cache))


def check_strict(env, url, cache, nbytes):
    """Fail unless ``pmf validate --json`` finds the remote model valid, strictly, having
    downloaded its checkpoints into ``cache`` (so that the timed runs measure a real validation)."""
    r = subprocess.run([env.pmf, 'validate', '--json', url], capture_output=True, text=True, env=env.s3.child_env(cache))
    model = json.loads(r.stdout)['models'][0] if r.stdout.strip() else {}
    cached = sum(os.path.getsize(os.path.join(b, n)) for b, _, names in os.walk(cache) for n in names)
    if r.returncode != 0 or not (model.get('valid') and model.get('strict')) or cached < nbytes:
        raise RuntimeError('pmf validate %s: exit %d, %s, %d bytes cached of %d: %s' % (
            url, r.returncode, model, cached, nbytes, r.stderr[-2000:]))
    shutil.rmtree(cache, ignore_errors=True)


# ---------------------------------------------------------------- s3_training

def windows(count, mid):
    """The saves (1-based, inclusive) compared by the growth target: mid-5..mid+5 and the last 11."""
    return (max(1, mid - 5), min(count, mid + 5)), (max(1, count - 10), count)


def growth(saves, mid):
    """The median save of the late window ÷ that of the early one (see ``windows``)."""
    (a, b), (c, d) = windows(len(saves), mid)
    return statistics.median(saves[c - 1:d]) / statistics.median(saves[a - 1:b])


def training_run(env, tmp, what, i):
    """One training loop to a fresh prefix: ``boto3`` (put_object) or ``bindings`` (ours); its
    JSON, an {"error": ...} when ours cannot save to object storage."""
    a, s = env.args, env.s3
    d = os.path.join(tmp, 's3-training-' + what)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    prefix = fresh_prefix('training-%s-%d' % (what, i))
    sizes = ['--epochs', str(a.epochs), '--size-mib', str(a.size_mib)]
    if what == 'boto3':
        cmd = [env.python, WORKLOADS_PY, '--impl', 'boto3', 's3-upload', '--dir', d, '--prefix', prefix] + sizes
    else:
        cmd = [env.python, WORKLOADS_PY, '--impl', 'bindings', 'training', '--dir', d, '--dest', s.url(prefix)] + sizes
    os.sync()
    try:
        out, _, _ = run_json(cmd, env=s.child_env(os.path.join(d, 'cache')))
    except RuntimeError as e:
        if what == 'boto3':
            raise
        log('  ours failed: %s' % e)
        out = {'error': 'failed: ' + (str(e).strip().splitlines() or ['?'])[-1][:300]}
    finally:
        shutil.rmtree(d, ignore_errors=True)
        s.delete(prefix)
    return out


def w_s3_training(env, tmp, table, results):
    a = env.args
    server(env, tmp)
    epochs, size, mid = a.epochs, a.size_mib, min(10, a.epochs)
    log('s3_training: %d epochs x %d MiB to the S3 server, %d rounds' % (epochs, size, a.rounds))
    runs = {'boto3': [], 'bindings': []}
    ours_error = None if env.bindings_available() else 'bindings not built'
    for i in range(a.rounds):
        for what in (('boto3', 'bindings') if i % 2 == 0 else ('bindings', 'boto3')):
            if what == 'bindings' and ours_error:
                continue
            out = training_run(env, tmp, what, i)
            if out.get('error'):
                ours_error = '%s%s' % (out['error'], (': ' + out['detail']) if out.get('detail') else '')
                log('  ours: %s' % ours_error)
                continue
            runs[what].append(out)
            log('  round %d %s: total save %s, save %d %s, save %d %s' % (
                i + 1, what, fmt_s(out['total_save_s']), mid, fmt_s(out['save_s'][mid - 1]), epochs, fmt_s(out['save_s'][-1])))
    results['s3_training'] = dict(runs, error=ours_error)
    base, ours = runs['boto3'], runs['bindings']
    label = 'S3 training loop %d × %d MiB, save every epoch to `s3://`: total save time, Python bindings (reference column: boto3 `put_object` of the checkpoint + a 2 KiB metadata object)' % (epochs, size)
    base_totals = [r['total_save_s'] for r in base]
    if not ours:
        table.row(label, spread(base_totals), 'not measured: %s' % ours_error, 'n/a', '≤ 1.3× boto3', None)
        table.row('&nbsp;&nbsp;S3 save %d ÷ save %d, Python bindings' % (epochs, mid), '', 'not measured', 'n/a', '≤ 1.5', None)
        return
    # Paired per round: the two loops of a round run next to each other on the same server.
    paired = [o['total_save_s'] / b['total_save_s'] for o, b in zip(ours, base)]
    table.row(label, spread(base_totals), spread([r['total_save_s'] for r in ours]),
              'ours ÷ boto3: %.2f (rounds: %s)' % (statistics.median(paired), ', '.join('%.2f' % x for x in paired)),
              '≤ 1.3× boto3', statistics.median(paired) <= 1.3)

    ours_growth = [growth(r['save_s'], mid) for r in ours]
    (a1, b1), (c1, d1) = windows(epochs, mid)
    single = ['%.2f' % (r['save_s'][-1] / r['save_s'][mid - 1]) for r in ours]
    base_desc = ', '.join('%.2f' % growth(r['save_s'], mid) for r in base) or 'n/a'
    table.row('&nbsp;&nbsp;S3 save %d ÷ save %d, Python bindings (medians of saves %d–%d ÷ %d–%d, per round; single saves: %s)' % (
                  epochs, mid, c1, d1, a1, b1, ', '.join(single)),
              'boto3: %s' % base_desc,
              'save %d: %s; save %d: %s' % (mid, spread([r['save_s'][mid - 1] for r in ours]), epochs, spread([r['save_s'][-1] for r in ours])),
              '%s (median %.2f)' % (', '.join('%.2f' % x for x in ours_growth), statistics.median(ours_growth)),
              '≤ 1.5', statistics.median(ours_growth) <= 1.5)


# ---------------------------------------------------------------- s3_validate

def w_s3_validate(env, tmp, table, results):
    a = env.args
    s = server(env, tmp)
    count, size = a.val_files, a.s3_val_mib
    label = 'S3 strict validation %d × %d MiB' % (count, size)
    if not env.pmf:
        table.row('%s: `pmf validate`, cold cache' % label, 'n/a', 'pmf not built', 'n/a', '≥ 90% of boto3', None)
        return
    prefix, nbytes = remote_model(env, tmp, count, size)
    url = s.url(prefix)
    check_strict(env, url, os.path.join(tmp, 's3-cache-check'), nbytes)
    log('s3_validate: %s, %d rounds' % (url, a.val_rounds))
    times = {'boto3': [], 'cold': [], 'warm': []}
    baseline = [env.python, WORKLOADS_PY, '--impl', 'boto3', 's3-md5', '--prefix', prefix, '--threads', '2']
    for i in range(a.val_rounds):
        cache = os.path.join(tmp, 's3-cache')
        for what in (('boto3', 'cold') if i % 2 == 0 else ('cold', 'boto3')):
            if what == 'boto3':
                os.sync()
                out, _, _ = run_json(baseline, env=s.child_env())
                if out['bytes'] != nbytes:
                    raise RuntimeError('the boto3 baseline read %d bytes, expected %d' % (out['bytes'], nbytes))
                times['boto3'].append(out['seconds'][0])
            else:
                times['cold'].append(pmf_validate_cold(env, url, cache)[0])
        os.sync()
        times['warm'].append(run_timed([env.pmf, 'validate', url], env=s.child_env(cache))[0])
        shutil.rmtree(cache, ignore_errors=True)
        log('  round %d: %s' % (i + 1, ', '.join('%s %s' % (k, fmt_s(v[-1])) for k, v in times.items())))
    results['s3_validate'] = {'bytes': nbytes, 'seconds': times}
    base = median_mbs(nbytes, times['boto3'])
    base_desc = '%s, %s' % (spread(times['boto3']), fmt_mbs(base))
    table.row('%s: boto3 `get_object` × 2 threads + `hashlib.md5`, streamed, not written (the baseline; downloads only, after import and listing)' % label,
              '', base_desc, '', '', None)
    # Paired per round (the baseline and the cold validation run next to each other).
    paired = [b / c for b, c in zip(times['boto3'], times['cold'])]
    frac = statistics.median(paired)
    table.row('%s: `pmf validate` (strict), cold cache (fresh `PMF_CACHE_DIR`), whole process' % label, base_desc,
              '%s, %s; **%.0f%% of boto3** (rounds: %s)' % (spread(times['cold']), fmt_mbs(median_mbs(nbytes, times['cold'])), frac * 100,
                                                        ', '.join('%.0f%%' % (x * 100) for x in paired)),
              '%.0f%% of boto3' % (frac * 100), '≥ 90% of boto3', frac >= 0.9)
    speedup = statistics.median(times['cold']) / statistics.median(times['warm'])
    table.row('%s: `pmf validate` (strict), warm cache (the same `PMF_CACHE_DIR` again)' % label, '',
              spread(times['warm']), 'cold ÷ warm: %.1f×' % speedup, '≥ 20× faster than cold', speedup >= 20)


# ---------------------------------------------------------------- s3_download_validate

def w_s3_download_validate(env, tmp, table, results):
    a = env.args
    s = server(env, tmp)
    count, size = a.val_files, a.s3_val_mib
    label = 'S3 strict validation %d × %d MiB: `pmf validate` cold vs boto3 download of the folder + reference `validate(path, strict=True)`' % (count, size)
    if not env.pmf:
        table.row(label, 'n/a', 'pmf not built', 'n/a', '≥ 2×', None)
        return
    prefix, _ = remote_model(env, tmp, count, size)
    url = s.url(prefix)
    log('s3_download_validate: %s, %d rounds' % (url, a.ref_rounds))
    user, ours = [], []
    for i in range(a.ref_rounds):
        for what in (('user', 'ours') if i % 2 == 0 else ('ours', 'user')):
            if what == 'ours':
                ours.append(pmf_validate_cold(env, url, os.path.join(tmp, 's3-cache'))[0])
                shutil.rmtree(os.path.join(tmp, 's3-cache'), ignore_errors=True)
                continue
            d = os.path.join(tmp, 's3-download')
            shutil.rmtree(d, ignore_errors=True)
            os.makedirs(d)
            os.sync()
            out, _, _ = run_json([env.python, WORKLOADS_PY, '--impl', 'reference', 's3-download-validate', '--dir', d,
                                  '--prefix', prefix], env=s.child_env())
            shutil.rmtree(d, ignore_errors=True)
            user.append(out)
        log('  round %d: download %s + validate %s; pmf %s' % (
            i + 1, fmt_s(user[-1]['download_s']), fmt_s(user[-1]['validate_s']), fmt_s(ours[-1])))
    results['s3_download_validate'] = {'user': user, 'pmf': ours}
    totals = [u['seconds'] for u in user]
    paired = [u / o for u, o in zip(totals, ours)]
    ratio = statistics.median(paired)
    table.row(label,
              '%s (download %s + validate %s)' % (spread(totals), fmt_s(statistics.median(u['download_s'] for u in user)),
                                                  fmt_s(statistics.median(u['validate_s'] for u in user))),
              spread(ours), '%s (rounds: %s)' % (fmt_ratio(ratio), ', '.join(fmt_ratio(x) for x in paired)), '≥ 2×', ratio >= 2)


# ---------------------------------------------------------------- s3_cp

def peak_rss(cmd, env):
    """Run a command; its peak resident set size in bytes, its wall seconds and the tool that
    measured it: /usr/bin/time -v when present, else the RUSAGE_CHILDREN of a Python process
    whose only child is the command."""
    if os.access('/usr/bin/time', os.X_OK):
        cmd, tool = ['/usr/bin/time', '-v'] + cmd, '/usr/bin/time -v'
    else:
        cmd = [sys.executable, '-c', 'import resource, subprocess, sys; c = subprocess.run(sys.argv[1:]).returncode; '
               'sys.stderr.write("\\nMaximum resident set size (kbytes): %d\\n" % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); '
               'sys.exit(c)'] + cmd
        tool = 'getrusage(RUSAGE_CHILDREN)'
    t = time.perf_counter()
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    wall = time.perf_counter() - t
    found = re.search(r'Maximum resident set size \(kbytes\): (\d+)', r.stderr)
    if r.returncode != 0 or not found:
        raise RuntimeError('%s failed (%d): %s' % (' '.join(cmd), r.returncode, r.stderr[-2000:]))
    return int(found.group(1)) * 1024, wall, tool


def pmf_cp_missing(env):
    """Why ``pmf cp`` cannot run (None when it can)."""
    if not env.pmf:
        return 'pmf not built'
    r = subprocess.run([env.pmf, 'cp', '--help'], capture_output=True, text=True)
    if r.returncode != 0:
        return '`pmf cp` is not available in this build (%s)' % ((r.stderr.strip().splitlines() or ['?'])[0])
    return None


def w_s3_cp(env, tmp, table, results):
    a = env.args
    s = server(env, tmp)
    size = a.s3_cp_mib
    label = 'S3 upload `pmf cp LOCAL s3://...` of a model with one %d MiB checkpoint: peak RSS' % size
    missing = pmf_cp_missing(env)
    if missing:
        table.row(label, '', 'not measured: %s' % missing, 'n/a', '≤ 200 MiB', None)
        return
    root = os.path.join(tmp, 's3-cp-model')
    run_json([env.example, 'make-model', '--dir', root, '--checkpoints', '1', '--size', str(size * MIB)])
    prefix = fresh_prefix('cp')
    url = s.url(prefix)
    log('s3_cp: pmf cp %s %s' % (root, url))
    os.sync()
    try:
        rss, wall, tool = peak_rss([env.pmf, 'cp', root, url], s.child_env(os.path.join(tmp, 's3-cache')))
    except RuntimeError as e:
        log('  pmf cp failed: %s' % e)
        table.row(label, '', '**failed**: %s' % (str(e).strip().splitlines() or ['?'])[-1][:300], 'n/a', '≤ 200 MiB', False)
        return
    finally:
        shutil.rmtree(root, ignore_errors=True)
    # The copy must be the model, checksums and all, or its RSS means nothing.
    check_strict(env, url, os.path.join(tmp, 's3-cache-cp'), size * MIB)
    s.delete(prefix)
    results['s3_cp'] = {'bytes': size * MIB, 'peak_rss_bytes': rss, 'seconds': wall, 'tool': tool}
    table.row(label, '', '%.0f MiB (%s); %s, %s' % (rss / MIB, tool, fmt_s(wall), fmt_mbs(size * MIB / 1e6 / wall)),
              '', '≤ 200 MiB', rss <= 200 * MIB)


# ---------------------------------------------------------------- s3_background

def w_s3_background(env, tmp, table, results):
    a = env.args
    label = 'background save to `s3://`'
    if not env.bindings_available():
        table.row('%s: blocking time of `model.save(..., background=True)`' % label, 'n/a', 'bindings not built', 'n/a', '≤ 5% of sync', None)
        return
    s = server(env, tmp)
    # The server keeps what a loop uploaded in its data folder, in the temporary folder, until
    # the prefix is deleted (and maybe after, until it compacts): count both loops, the queued
    # pairs and the epoch files.
    epochs, size, note = training_bench.fit(shutil.disk_usage(tmp).free, a.s3_bg_epochs, a.s3_bg_mib, 2, 2 * a.bg_queued + 2)
    log('s3_background: %d epochs x %d MiB to %s, sync and background%s' % (epochs, size, s.endpoint, ('; ' + note) if note else ''))
    prefixes = {}

    def dest_for(mode, i):
        prefixes[(mode, i)] = fresh_prefix('background-%s-%d' % (mode, i))
        return s.url(prefixes[(mode, i)])

    def cleanup(url):
        s.delete(url[len('s3://%s/' % s.bucket):])

    runs = training_bench.blocking_loops(env, tmp, 's3-background', epochs, size, a.bg_queued, dest_for=dest_for,
                                         child_env=s.child_env(os.path.join(tmp, 's3-background-cache')), cleanup=cleanup)
    shutil.rmtree(os.path.join(tmp, 's3-background-cache'), ignore_errors=True)
    frac = training_bench.blocking_rows(table, runs, label, epochs, size, 0.05, note)
    results['s3_background'] = dict(runs, epochs=epochs, size_mib=size, note=note, background_over_sync=frac)


WORKLOADS = {'s3_training': w_s3_training, 's3_validate': w_s3_validate,
             's3_download_validate': w_s3_download_validate, 's3_cp': w_s3_cp, 's3_background': w_s3_background}
GROUPS = {'s3': list(WORKLOADS)}
