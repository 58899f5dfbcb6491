#!/usr/bin/env python3
"""Python side of benches/compare: run one workload with the reference ``plums`` 0.5.2
(``--impl reference``, module ``plums.model``), with our bindings (``--impl bindings``,
package ``plums_model``) or with boto3 alone (``--impl boto3``, the object-storage baselines), in
a fresh interpreter, and print one JSON object (seconds).

    workloads.py --impl reference training --dir DIR --epochs 100 --size-mib 4
    workloads.py --impl bindings training --dir DIR --dest s3://BUCKET/PREFIX
    workloads.py --impl reference validate --dir DIR --strict --repeat 3
    workloads.py --impl reference load --dir DIR --repeat 1
    workloads.py --impl boto3 s3-upload --dir DIR --prefix PREFIX --epochs 100 --size-mib 4
    workloads.py --impl boto3 s3-md5 --prefix PREFIX --threads 2
    workloads.py --impl reference s3-download-validate --dir DIR --prefix PREFIX
    workloads.py --impl bindings blocking-save --dir DIR --mode background --epochs 6 --size-mib 512 --queued 2
    workloads.py --impl bindings retention-loop --dir DIR --mode sync --epochs 100 --size-mib 1 --keep 3

The object-storage workloads read the server from PMF_TEST_S3_ENDPOINT, _BUCKET,
_ACCESS_KEY_ID, _SECRET_ACCESS_KEY and _REGION (as printed by scripts/s3-server).

Exit status 3 with {"error": "bindings not built"} when ``plums_model`` cannot be imported, 4
with {"error": "unsupported", ...} when the implementation refuses the location
(``UnsupportedLocationError``: saving to object storage before it exists).
"""
import argparse
import concurrent.futures
import hashlib
import json
import os
import shutil
import sys
import time


def import_impl(name):
    """The (Model, Checkpoint, validate) triple of an implementation (None for boto3 alone)."""
    if name == 'boto3':
        return None
    if name == 'reference':
        from plums.model import Model, Checkpoint
        from plums.model.validation import validate
        return Model, Checkpoint, validate
    try:
        import plums_model as pm
    except ImportError as e:
        print(json.dumps({'error': 'bindings not built', 'detail': str(e)}))
        sys.exit(3)
    mod = getattr(pm, 'model', pm)
    model = getattr(pm, 'Model', None) or getattr(mod, 'Model')
    checkpoint = getattr(pm, 'Checkpoint', None) or getattr(mod, 'Checkpoint')
    validate = getattr(pm, 'validate', None)
    if validate is None:
        validation = getattr(pm, 'validation', None) or getattr(mod, 'validation', None)
        validate = getattr(validation, 'validate', None)
    return model, checkpoint, validate


def destination(args):
    """Where a training workload saves (``--dest``, default DIR/model), and the keyword arguments
    of its saves: a URL is saved to with the server's options, exactly as a user passes them."""
    dest = args.dest or os.path.join(args.dir, 'model')
    return dest, ({'storage_options': s3_storage_options()} if '://' in dest else {})


def new_model(Model, work, model_id='bench-training'):
    """A model with a started training, its configuration file in ``work``."""
    os.makedirs(work, exist_ok=True)
    cfg = os.path.join(work, 'config.py')
    with open(cfg, 'w') as f:
        f.write('# bench configuration\nlr = 0.1\nbatch_size = 32\n')
    model = Model('bench_trainer', 'py_pa', '1.0.0', 'bench', model_id, cfg, {})
    model.register_training_start(0)
    return model


def training(impl, args):
    Model, Checkpoint, _ = impl
    work = os.path.join(args.dir, 'work')
    dest, options = destination(args)
    model = new_model(Model, work)
    size = args.size_mib << 20
    save_s, register_s, write_s = [], [], []
    loop_start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        path = os.path.join(work, 'epoch_{}.pt'.format(epoch))
        t = time.perf_counter()
        with open(path, 'wb') as f:
            f.write(os.urandom(size))
        write_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        ck = Checkpoint(epoch, path=path, epoch=epoch)
        model.register_epoch(epoch)
        model.add_checkpoint(ck)
        register_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        model.save(dest, **options)
        save_s.append(time.perf_counter() - t)
    return {
        'workload': 'training', 'epochs': args.epochs, 'size_mib': args.size_mib,
        'loop_s': time.perf_counter() - loop_start, 'total_save_s': sum(save_s),
        'total_register_s': sum(register_s), 'total_write_s': sum(write_s), 'save_s': save_s,
    }


def validate_workload(impl, args):
    _, _, validate = impl
    if validate is None:
        raise SystemExit('this implementation has no validate function')
    times = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        validate(args.dir, strict=args.strict)
        times.append(time.perf_counter() - t)
    return {'workload': 'validate', 'strict': args.strict, 'seconds': times}


def load(impl, args):
    Model, _, _ = impl
    times = []
    count = 0
    for _ in range(args.repeat):
        t = time.perf_counter()
        m = Model.load(args.dir, strict=args.strict)
        times.append(time.perf_counter() - t)
        count = len(m.checkpoint_collection)
    return {'workload': 'load', 'strict': args.strict, 'checkpoints': count, 'seconds': times}


# ---------------------------------------------------------------- object storage

def s3_server():
    """The S3 server of the run (scripts/s3-server's exports): endpoint, bucket, key, secret, region."""
    env = os.environ
    return tuple(env['PMF_TEST_S3_' + name] for name in ('ENDPOINT', 'BUCKET', 'ACCESS_KEY_ID', 'SECRET_ACCESS_KEY', 'REGION'))


def s3_storage_options():
    """Our ``storage_options`` for the server (object_store's key names)."""
    endpoint, _, key, secret, region = s3_server()
    return {'endpoint': endpoint, 'access_key_id': key, 'secret_access_key': secret, 'region': region}


def s3_client():
    """A boto3 client of the server (default configuration) and the bucket."""
    import boto3
    endpoint, bucket, key, secret, region = s3_server()
    client = boto3.client('s3', endpoint_url=endpoint, region_name=region, aws_access_key_id=key,
                          aws_secret_access_key=secret)
    return client, bucket


def s3_objects(client, bucket, prefix):
    """Every object whose key starts with ``prefix``: dicts with Key, Size, ETag."""
    objects = []
    for page in client.get_paginator('list_objects_v2').paginate(Bucket=bucket, Prefix=prefix):
        objects += page.get('Contents', [])
    return objects


def s3_upload(_, args):
    """The boto3 baseline of the object-storage training loop: every epoch writes a fresh
    checkpoint file of random bytes (not timed) and uploads it and a 2 KiB metadata object with
    ``put_object`` (timed: ``save_s``, one value per epoch), as a script without a model format
    would."""
    client, bucket = s3_client()
    work = os.path.join(args.dir, 'work')
    os.makedirs(work, exist_ok=True)
    metadata = ''.join('epoch_{}: {}\n'.format(i, '0' * 32) for i in range(48)).encode()[:2048]
    size = args.size_mib << 20
    save_s = []
    for epoch in range(1, args.epochs + 1):
        path = os.path.join(work, 'epoch_{}.pt'.format(epoch))
        with open(path, 'wb') as f:
            f.write(os.urandom(size))
        t = time.perf_counter()
        with open(path, 'rb') as f:
            client.put_object(Bucket=bucket, Key='{}/data/checkpoints/epoch_{}.pt'.format(args.prefix, epoch), Body=f)
        client.put_object(Bucket=bucket, Key=args.prefix + '/metadata.yaml', Body=metadata)
        save_s.append(time.perf_counter() - t)
    return {'workload': 's3-upload', 'epochs': args.epochs, 'size_mib': args.size_mib,
            'metadata_bytes': len(metadata), 'total_save_s': sum(save_s), 'save_s': save_s}


def s3_md5(_, args):
    """The boto3 baseline of strict validation on object storage: download every checkpoint
    object of the model at ``--prefix`` with ``--threads`` threads, hashing each with
    hashlib.md5 as it streams (nothing is written to disk). Timed: the downloads, after the
    listing; each digest must be the object's ETag (single-part uploads)."""
    client, bucket = s3_client()
    objects = s3_objects(client, bucket, args.prefix + '/data/checkpoints/')

    def digest(key):
        h = hashlib.md5()
        for chunk in client.get_object(Bucket=bucket, Key=key)['Body'].iter_chunks(1 << 20):
            h.update(chunk)
        return h.hexdigest()

    t = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(args.threads) as pool:
        digests = list(pool.map(digest, [o['Key'] for o in objects]))
    seconds = time.perf_counter() - t
    for o, d in zip(objects, digests):
        if o['ETag'].strip('"') != d:
            raise SystemExit('{}: MD5 {} but ETag {}'.format(o['Key'], d, o['ETag']))
    return {'workload': 's3-md5', 'threads': args.threads, 'objects': len(objects),
            'bytes': sum(o['Size'] for o in objects), 'seconds': [seconds]}


def s3_download_validate(impl, args):
    """What a user does without object-storage support: download every object of the model at
    ``--prefix`` to ``DIR/model`` with boto3 (``download_file``, one object after the other,
    each with boto3's default transfer settings), then validate the folder strictly. Timed:
    both, apart and together (imports and the client are not timed)."""
    _, _, validate = impl
    client, bucket = s3_client()
    dest = os.path.join(args.dir, 'model')
    t = time.perf_counter()
    for o in s3_objects(client, bucket, args.prefix + '/'):
        path = os.path.join(dest, *o['Key'][len(args.prefix) + 1:].split('/'))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        client.download_file(bucket, o['Key'], path)
    # An empty folder is no object: recreate the (empty) initialisation folder the format requires.
    os.makedirs(os.path.join(dest, 'data', 'initialisation'), exist_ok=True)
    download_s = time.perf_counter() - t
    t = time.perf_counter()
    validate(dest, strict=True)
    validate_s = time.perf_counter() - t
    return {'workload': 's3-download-validate', 'download_s': download_s, 'validate_s': validate_s,
            'seconds': download_s + validate_s}


# ---------------------------------------------------------------- background saves, retention

def write_random(path, size, sync=True):
    """Write ``size`` random bytes to ``path`` (16 MiB at a time), fsynced when ``sync`` (so that
    a save timed next does not also wait for the write-back of this file); the seconds it took."""
    t = time.perf_counter()
    with open(path, 'wb') as f:
        left = size
        while left:
            n = min(left, 16 << 20)
            f.write(os.urandom(n))
            left -= n
        if sync:
            f.flush()
            os.fsync(f.fileno())
    return time.perf_counter() - t


def checkpoint_files(dest):
    """The names of the files in a local model's ``data/checkpoints`` folder."""
    return sorted(os.listdir(os.path.join(dest, 'data', 'checkpoints')))


def blocking_save(impl, args):
    """The time a training loop is blocked by a save of a big checkpoint. Each of ``--epochs``
    epochs writes a NEW checkpoint file of ``--size-mib`` MiB of random bytes (fsynced) and
    creates its ``Checkpoint`` (which hashes the file: ``checkpoint_s``), both before the timing,
    then registers the epoch and the checkpoint and times the ``model.save(dest)`` call alone
    (``call_s``): ``--mode sync`` the whole (durable) save, ``--mode background`` the call of
    ``save(dest, background=True)``, after which the loop waits for that save (``complete_s``:
    from the call to the end of ``handle.result()``), so that every call finds an idle queue.
    The epoch's file is removed once it is saved (the model holds its copy).

    Then (background only) ``--queued`` times, with a fresh model saved once (empty) to
    ``dest-queued-<i>``: two checkpoints are written and hashed, saved in the background one
    right after the other; the second call is timed while the first save is in flight
    (``queued_s``, and ``in_flight``: whether the first save was still running when the second
    call returned)."""
    Model, Checkpoint, _ = impl
    dest, options = destination(args)
    work = os.path.join(args.dir, 'work')
    model = new_model(Model, work)
    background = args.mode == 'background'
    size = args.size_mib << 20
    epochs = []
    for epoch in range(1, args.epochs + 1):
        path = os.path.join(work, 'epoch_{}.pt'.format(epoch))
        write_s = write_random(path, size)
        t = time.perf_counter()
        ck = Checkpoint(epoch, path=path, epoch=epoch)
        checkpoint_s = time.perf_counter() - t
        model.register_epoch(epoch)
        model.add_checkpoint(ck)
        t = time.perf_counter()
        handle = model.save(dest, background=background, **options)
        call_s = time.perf_counter() - t
        record = {'epoch': epoch, 'write_s': write_s, 'checkpoint_s': checkpoint_s, 'call_s': call_s}
        if background:
            record['pending_after_call'] = not handle.done()
            handle.result()
            record['complete_s'] = time.perf_counter() - t
        os.remove(path)
        epochs.append(record)
    t = time.perf_counter()
    model.wait_for_saves()
    final_wait_s = time.perf_counter() - t
    if '://' not in dest:
        saved = checkpoint_files(dest)
        if len(saved) != args.epochs:
            raise SystemExit('{} holds {} checkpoint files after {} epochs: {}'.format(dest, len(saved), args.epochs, saved))
        # The space for the queued pairs below.
        shutil.rmtree(dest)
    queued = []
    for i in range(args.queued if background else 0):
        qdest = '{}-queued-{}'.format(dest, i)
        qwork = os.path.join(args.dir, 'work-queued-{}'.format(i))
        m = new_model(Model, qwork, 'bench-queued-{}'.format(i))
        m.save(qdest, **options)
        paths, cks, checkpoint_s = [], [], []
        for epoch in (1, 2):
            path = os.path.join(qwork, 'epoch_{}.pt'.format(epoch))
            write_random(path, size)
            t = time.perf_counter()
            cks.append(Checkpoint(epoch, path=path, epoch=epoch))
            checkpoint_s.append(time.perf_counter() - t)
            paths.append(path)
        m.register_epoch(1)
        m.add_checkpoint(cks[0])
        t = time.perf_counter()
        first = m.save(qdest, background=True, **options)
        first_s = time.perf_counter() - t
        m.register_epoch(2)
        m.add_checkpoint(cks[1])
        t = time.perf_counter()
        second = m.save(qdest, background=True, **options)
        queued_s = time.perf_counter() - t
        in_flight = not first.done()
        first.result()
        first_complete_s = time.perf_counter() - t
        second.result()
        both_complete_s = time.perf_counter() - t
        m.wait_for_saves()
        if '://' not in qdest:
            saved = checkpoint_files(qdest)
            if len(saved) != 2:
                raise SystemExit('{} holds {} checkpoint files, expected 2: {}'.format(qdest, len(saved), saved))
            shutil.rmtree(qdest)
        shutil.rmtree(qwork)
        queued.append({'first_call_s': first_s, 'queued_s': queued_s, 'in_flight': in_flight,
                       'first_complete_s': first_complete_s, 'both_complete_s': both_complete_s,
                       'checkpoint_s': checkpoint_s})
    return {'workload': 'blocking-save', 'mode': args.mode, 'epochs': args.epochs, 'size_mib': args.size_mib,
            'dest': 's3' if '://' in dest else 'local', 'per_epoch': epochs, 'call_s': [e['call_s'] for e in epochs],
            'final_wait_s': final_wait_s, 'queued': queued}


def retention_loop(impl, args):
    """A training loop of ``--epochs`` epochs x ``--size-mib`` MiB (fresh random content each
    epoch, not fsynced, as in ``training``) saving every epoch with ``Retention(last=--keep)``
    to the same local folder, synchronously (``--mode sync``) or in the background without
    waiting (``--mode background``; ``wait_s`` is the final ``wait_for_saves()``). Timed: each
    ``save`` call (``save_s``) and the whole loop, file writes and ``Checkpoint()`` hashing
    included, up to the end of ``wait_for_saves()`` (``loop_s``). Then the folder's checkpoint
    files and the references a strict ``Model.load`` finds (``files``, ``loaded``)."""
    Model, Checkpoint, _ = impl
    import plums_model
    dest, options = destination(args)
    if options:
        raise SystemExit('retention-loop saves to a local folder')
    work = os.path.join(args.dir, 'work')
    model = new_model(Model, work)
    retention = plums_model.Retention(last=args.keep)
    background = args.mode == 'background'
    size = args.size_mib << 20
    save_s, checkpoint_s, written = [], [], []
    loop_start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        path = os.path.join(work, 'epoch_{}.pt'.format(epoch))
        write_random(path, size, sync=False)
        written.append(path)
        t = time.perf_counter()
        ck = Checkpoint(epoch, path=path, epoch=epoch)
        checkpoint_s.append(time.perf_counter() - t)
        model.register_epoch(epoch)
        model.add_checkpoint(ck)
        t = time.perf_counter()
        model.save(dest, background=background, retention=retention)
        save_s.append(time.perf_counter() - t)
        if not background:
            os.remove(path)
    t = time.perf_counter()
    model.wait_for_saves()
    wait_s = time.perf_counter() - t
    loop_s = time.perf_counter() - loop_start
    for path in written:
        if os.path.exists(path):
            os.remove(path)
    loaded = Model.load(dest, strict=True)
    return {'workload': 'retention-loop', 'mode': args.mode, 'epochs': args.epochs, 'size_mib': args.size_mib,
            'keep': args.keep, 'save_s': save_s, 'total_save_s': sum(save_s), 'checkpoint_s': checkpoint_s,
            'wait_s': wait_s, 'loop_s': loop_s, 'files': checkpoint_files(dest),
            'registered': [str(r) for r in model.checkpoint_collection],
            'loaded': [str(r) for r in loaded.checkpoint_collection]}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--impl', choices=['reference', 'bindings', 'boto3'], required=True)
    p.add_argument('workload', choices=['training', 'validate', 'load', 's3-upload', 's3-md5', 's3-download-validate',
                                        'blocking-save', 'retention-loop'])
    p.add_argument('--dir')
    p.add_argument('--dest', help='training: where to save (default DIR/model); a URL is saved to with the S3 server\'s options')
    p.add_argument('--prefix', help='object-storage workloads: the key prefix of the model in the bucket')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--epochs', type=int, default=100)
    p.add_argument('--size-mib', type=int, default=4)
    p.add_argument('--strict', action='store_true')
    p.add_argument('--mode', choices=['sync', 'background'], default='sync',
                   help='blocking-save, retention-loop: synchronous saves, or save(..., background=True)')
    p.add_argument('--queued', type=int, default=0,
                   help='blocking-save --mode background: pairs of saves timing a call queued behind an in-flight save')
    p.add_argument('--keep', type=int, default=3, help='retention-loop: Retention(last=KEEP)')
    p.add_argument('--repeat', type=int, default=1)
    args = p.parse_args()
    impl = import_impl(args.impl)
    run = {'training': training, 'validate': validate_workload, 'load': load, 's3-upload': s3_upload, 's3-md5': s3_md5,
           's3-download-validate': s3_download_validate, 'blocking-save': blocking_save,
           'retention-loop': retention_loop}[args.workload]
    try:
        out = run(impl, args)
    except Exception as e:
        if type(e).__name__ != 'UnsupportedLocationError':
            raise
        print(json.dumps({'error': 'unsupported', 'detail': '{}: {}'.format(type(e).__name__, e)}))
        sys.exit(4)
    out['impl'] = args.impl
    print(json.dumps(out))


if __name__ == '__main__':
    main()
