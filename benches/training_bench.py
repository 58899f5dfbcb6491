"""The training-loop rows of issue 11 in benches/compare: background saves and retention.
``--only background`` runs the two local ones (``background_save``, ``retention``); the object-
storage one (``s3_background``, in the ``s3`` group) is in benches/s3_bench.py and uses the
helpers here. The Python side runs in fresh interpreters (benches/workloads.py
``blocking-save`` and ``retention-loop``) with our bindings ``plums_model``; there is no
reference row (plums 0.5.2 has neither background saves nor retention).

Rows:
  background_save  N epochs (default 6) each writing a NEW checkpoint file of M MiB (default 512)
                   of random bytes, fsynced, and creating its ``Checkpoint`` (MD5 of the file),
                   both before the timing; timed: the ``model.save(path)`` call alone. One loop
                   with synchronous durable saves, one with ``save(path, background=True)``
                   waiting for each save (``handle.result()``) before the next epoch, so that
                   every call finds an idle queue; the verdict: median background call <= 10%
                   of the median synchronous save. Also: a call queued behind an in-flight save
                   (two checkpoints saved one right after the other), the background save's
                   duration (call to ``result()``), and the ``Checkpoint()`` hashing time, which
                   is in the caller in both loops and in neither time.
  retention        100 epochs x 1 MiB saving every epoch with ``Retention(last=3)``, durable, to
                   the same folder: the folder must hold exactly 3 checkpoint files at the end
                   (and a strict ``Model.load`` must find those 3), else the run fails; per-save
                   time flat: median of saves 91-100 / median of saves 1-10 <= 1.5 (median over
                   the rounds). The same loop with background saves: time per ``save`` call and
                   wall time of the whole loop up to the end of ``wait_for_saves()``.

Disk: the background_save loops hold up to N x M MiB in the model (plus one epoch file); when
the temporary folder's file system has less free space than a loop needs (plus 1 GiB), the
epochs (down to 3), then the size, are scaled down, and the rows say so.
"""
import os
import shutil
import statistics

from compare import GIB, HERE, MIB, fmt_s, log, run_json, spread

WORKLOADS_PY = os.path.join(HERE, 'workloads.py')
MARGIN = 1 * GIB


def fit(free, epochs, size_mib, files_per_epoch, fixed_files, min_epochs=3):
    """(epochs, size MiB, note): the largest loop at most ``epochs`` x ``size_mib`` that needs at
    most ``free`` - 1 GiB, where a loop of E epochs holds ``files_per_epoch`` x E + ``fixed_files``
    files of the size at its peak; ``note`` is '' when nothing was scaled down."""
    def need(e, s):
        return (files_per_epoch * e + fixed_files) * s * MIB + MARGIN
    e, s = epochs, size_mib
    while need(e, s) > free and e > min_epochs:
        e -= 1
    while need(e, s) > free and s > 1:
        s //= 2
    if (e, s) == (epochs, size_mib):
        return e, s, ''
    return e, s, 'scaled down from %d × %d MiB: %.1f GiB free in the temporary folder' % (epochs, size_mib, free / GIB)


def fmt_pct(x):
    """A fraction as a percentage: two significant digits below 1% (0.0025%), else one decimal."""
    return ('%.2g%%' % (x * 100)) if x < 0.01 else ('%.1f%%' % (x * 100))


def blocking_loops(env, tmp, name, epochs, size, queued, dest_for=None, child_env=None, cleanup=None):
    """The synchronous and the background ``blocking-save`` loops (workloads.py), ``env.args.bg_rounds``
    rounds, alternating which goes first; {'sync': [...], 'background': [...]}. ``dest_for(mode,
    round)`` gives a destination URL (None: the loop's local folder), ``child_env`` the children's
    environment, ``cleanup(dest)`` removes a remote destination afterwards."""
    runs = {'sync': [], 'background': []}
    for i in range(env.args.bg_rounds):
        for mode in (('sync', 'background') if i % 2 == 0 else ('background', 'sync')):
            d = os.path.join(tmp, '%s-%s' % (name, mode))
            shutil.rmtree(d, ignore_errors=True)
            os.makedirs(d)
            dest = dest_for(mode, i) if dest_for else None
            cmd = [env.python, WORKLOADS_PY, '--impl', 'bindings', 'blocking-save', '--dir', d, '--mode', mode,
                   '--epochs', str(epochs), '--size-mib', str(size)]
            if mode == 'background':
                cmd += ['--queued', str(queued)]
            if dest:
                cmd += ['--dest', dest]
            # Start with no dirty data of an earlier loop: it would be written back during this one's fsyncs.
            os.sync()
            try:
                out, wall, _ = run_json(cmd, env=child_env)
            finally:
                shutil.rmtree(d, ignore_errors=True)
                if dest and cleanup:
                    cleanup(dest)
            if out.get('error'):
                raise RuntimeError('%s: %s %s' % (name, out['error'], out.get('detail', '')))
            runs[mode].append(out)
            log('  round %d %s (%s): save calls %s%s' % (
                i + 1, mode, fmt_s(wall), ', '.join(fmt_s(x) for x in out['call_s']),
                ('; queued calls %s' % ', '.join(fmt_s(q['queued_s']) for q in out['queued'])) if out['queued'] else ''))
    return runs


def blocking_rows(table, runs, where, epochs, size, target, note=''):
    """The rows of ``blocking_loops``: the verdict is median background call ÷ median synchronous
    save <= ``target`` (a fraction); the queued call, the background save's duration and the
    ``Checkpoint()`` hashing time beside."""
    sync = [x for r in runs['sync'] for x in r['call_s']]
    bg = [x for r in runs['background'] for x in r['call_s']]
    queued = [q for r in runs['background'] for q in r['queued']]
    complete = [e['complete_s'] for r in runs['background'] for e in r['per_epoch']]
    hashing = [e['checkpoint_s'] for mode in ('sync', 'background') for r in runs[mode] for e in r['per_epoch']]
    hashing += [x for q in queued for x in q['checkpoint_s']]
    sync_med = statistics.median(sync)
    frac = statistics.median(bg) / sync_med
    suffix = (' (%s)' % note) if note else ''
    label = '%s, %d epochs × a new %d MiB checkpoint, durable: blocking time of `model.save(...)`%s' % (where, epochs, size, suffix)
    table.row('%s, `background=True`, idle queue (reference column: the synchronous save of the same data)' % label,
              spread(sync), spread(bg),
              'background ÷ sync: %s (per epoch: %s)' % (fmt_pct(frac), ', '.join(fmt_pct(b / s) for b, s in zip(bg, sync))),
              '≤ %s of sync' % fmt_pct(target).replace('.0%', '%'), frac <= target)
    if queued:
        qs = [q['queued_s'] for q in queued]
        in_flight = sum(1 for q in queued if q['in_flight'])
        qfrac = statistics.median(qs) / sync_med
        table.row('&nbsp;&nbsp;%s: `background=True` queued behind an in-flight save of the same size '
                  '(first save still running after the second call: %d of %d)' % (where, in_flight, len(queued)),
                  spread(sync), spread(qs), 'background ÷ sync: %s' % fmt_pct(qfrac),
                  '≤ %s of sync' % fmt_pct(target).replace('.0%', '%'), (qfrac <= target) if in_flight == len(queued) else None)
    table.row('&nbsp;&nbsp;(context) %s: duration of the background save, from the call to the end of `handle.result()`' % where,
              spread(sync), spread(complete), 'background ÷ sync: %.2f' % (statistics.median(complete) / sync_med), '', None)
    table.row('&nbsp;&nbsp;(context) `Checkpoint(...)` of each new %d MiB file (its MD5; in the caller, before either timed save)' % size,
              '', '%s, %.0f MB/s' % (spread(hashing), size * MIB / 1e6 / statistics.median(hashing)), '', '', None)
    return frac


def w_background_save(env, tmp, table, results):
    a = env.args
    label = 'background save, local model'
    if not env.bindings_available():
        table.row('%s: blocking time of `model.save(..., background=True)`' % label, 'n/a', 'bindings not built', 'n/a', '≤ 10% of sync', None)
        return
    # The sync loop holds every epoch's checkpoint in the model plus one epoch file; so does the
    # background one (its queued pairs run after the model is removed: 2 files + 2 in the model).
    epochs, size, note = fit(shutil.disk_usage(tmp).free, a.bg_epochs, a.bg_mib, 1, 1)
    log('background_save: %d epochs x %d MiB, sync and background%s' % (epochs, size, ('; ' + note) if note else ''))
    runs = blocking_loops(env, tmp, 'background-save', epochs, size, a.bg_queued)
    frac = blocking_rows(table, runs, 'background save, local model', epochs, size, 0.10, note)
    results['background_save'] = dict(runs, epochs=epochs, size_mib=size, note=note, background_over_sync=frac)


def window(saves, end):
    """Median of the 10 saves ending at ``end`` (1-based), as the training rows."""
    return statistics.median(saves[max(0, end - 10):end])


def w_retention(env, tmp, table, results):
    a = env.args
    epochs, size, keep = a.retention_epochs, a.retention_mib, a.retention_keep
    mid = min(10, epochs)
    label = 'retention loop %d × %d MiB, `Retention(last=%d)`, durable' % (epochs, size, keep)
    if not env.bindings_available():
        table.row(label, '', 'bindings not built', 'n/a', 'exactly %d files' % keep, None)
        return
    log('retention: %d epochs x %d MiB, Retention(last=%d), %d rounds, sync and background' % (epochs, size, keep, a.rounds))
    runs = {'sync': [], 'background': []}
    for i in range(a.rounds):
        for mode in (('sync', 'background') if i % 2 == 0 else ('background', 'sync')):
            d = os.path.join(tmp, 'retention-' + mode)
            shutil.rmtree(d, ignore_errors=True)
            os.makedirs(d)
            os.sync()
            try:
                out, _, _ = run_json([env.python, WORKLOADS_PY, '--impl', 'bindings', 'retention-loop', '--dir', d,
                                      '--mode', mode, '--epochs', str(epochs), '--size-mib', str(size), '--keep', str(keep)])
            finally:
                shutil.rmtree(d, ignore_errors=True)
            expected = [str(e) for e in range(epochs - keep + 1, epochs + 1)]
            files = ['epoch_%s.pt' % e for e in expected]
            out['files'] = sorted(out.get('files') or [], key=lambda f: (len(f), f))
            # The point of retention: fail the run, loudly, if the folder holds anything else.
            if out.get('error') or sorted(out['files']) != sorted(files) or out['loaded'] != expected or out['registered'] != expected:
                raise RuntimeError('retention loop (%s, round %d): the model folder must hold exactly %s and register %s; '
                                   'it holds %s, the model registers %s, a strict load finds %s%s' % (
                                       mode, i + 1, files, expected, out.get('files'), out.get('registered'),
                                       out.get('loaded'), (' (%s)' % out['error']) if out.get('error') else ''))
            runs[mode].append(out)
            log('  round %d %s: %d files (%s), total save %s, save %d %s, save %d %s, loop %s (wait_for_saves %s)' % (
                i + 1, mode, len(out['files']), ', '.join(out['files']), fmt_s(out['total_save_s']), mid,
                fmt_s(out['save_s'][mid - 1]), epochs, fmt_s(out['save_s'][-1]), fmt_s(out['loop_s']), fmt_s(out['wait_s'])))
    results['retention'] = runs

    table.row('%s: checkpoint files in the model folder at the end (sync and background loops, every round; a strict `Model.load` finds the same)' % label,
              '', '%d in each of %d loops (%s)' % (keep, len(runs['sync']) + len(runs['background']), ', '.join(runs['sync'][0]['files'])),
              '', 'exactly %d' % keep, True)
    for mode, desc in (('sync', 'synchronous saves'), ('background', '`background=True`, no wait between epochs: time per `save` call')):
        rs = runs[mode]
        win = [window(r['save_s'], epochs) / window(r['save_s'], mid) for r in rs]
        single = ['%.2f' % (r['save_s'][-1] / r['save_s'][mid - 1]) for r in rs]
        target = '≤ 1.5' if mode == 'sync' else ''
        table.row('&nbsp;&nbsp;save %d ÷ save %d, %s (medians of saves %d–%d ÷ %d–%d, per round; single saves: %s)' % (
                      epochs, mid, desc, epochs - 9, epochs, max(1, mid - 9), mid, ', '.join(single)),
                  '', 'save %d: %s; save %d: %s; all saves: %s' % (
                      mid, spread([r['save_s'][mid - 1] for r in rs]), epochs, spread([r['save_s'][-1] for r in rs]),
                      spread([x for r in rs for x in r['save_s']])),
                  '%s (median %.2f)' % (', '.join('%.2f' % w for w in win), statistics.median(win)),
                  target, (statistics.median(win) <= 1.5) if target else None)
    sync_loop = [r['loop_s'] for r in runs['sync']]
    bg_loop = [r['loop_s'] for r in runs['background']]
    table.row('&nbsp;&nbsp;(context) %s: whole loop (writes, `Checkpoint()`, saves; background: up to the end of `wait_for_saves()`); '
              'reference column: synchronous saves' % label,
              spread(sync_loop), '%s (final `wait_for_saves()`: %s)' % (spread(bg_loop), spread([r['wait_s'] for r in runs['background']])),
              'background ÷ sync: %.2f' % (statistics.median(bg_loop) / statistics.median(sync_loop)), '', None)
    table.row('&nbsp;&nbsp;(context) %s: total time in `save` calls' % label,
              spread([r['total_save_s'] for r in runs['sync']]), spread([r['total_save_s'] for r in runs['background']]),
              'background ÷ sync: %s' % fmt_pct(statistics.median(r['total_save_s'] for r in runs['background'])
                                               / statistics.median(r['total_save_s'] for r in runs['sync'])), '', None)


WORKLOADS = {'background_save': w_background_save, 'retention': w_retention}
GROUPS = {'background': list(WORKLOADS)}
