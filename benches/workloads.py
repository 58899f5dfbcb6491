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


def training(impl, args):
    Model, Checkpoint, _ = impl
    work = os.path.join(args.dir, 'work')
    dest = args.dest or os.path.join(args.dir, 'model')
    # A URL is saved to with the server's options, exactly as a user passes them.
    options = {'storage_options': s3_storage_options()} if '://' in dest else {}
    os.makedirs(work, exist_ok=True)
    cfg = os.path.join(work, 'config.py')
    with open(cfg, 'w') as f:
        f.write('# bench configuration\nlr = 0.1\nbatch_size = 32\n')
    model = Model('bench_trainer', 'py_pa', '1.0.0', 'bench', 'bench-training', cfg, {})
    model.register_training_start(0)
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


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--impl', choices=['reference', 'bindings', 'boto3'], required=True)
    p.add_argument('workload', choices=['training', 'validate', 'load', 's3-upload', 's3-md5', 's3-download-validate'])
    p.add_argument('--dir')
    p.add_argument('--dest', help='training: where to save (default DIR/model); a URL is saved to with the S3 server\'s options')
    p.add_argument('--prefix', help='object-storage workloads: the key prefix of the model in the bucket')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--epochs', type=int, default=100)
    p.add_argument('--size-mib', type=int, default=4)
    p.add_argument('--strict', action='store_true')
    p.add_argument('--repeat', type=int, default=1)
    args = p.parse_args()
    impl = import_impl(args.impl)
    run = {'training': training, 'validate': validate_workload, 'load': load, 's3-upload': s3_upload, 's3-md5': s3_md5,
           's3-download-validate': s3_download_validate}[args.workload]
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
