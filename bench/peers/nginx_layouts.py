"""Where the bytes of stored nginx access logs go, and what other layouts would cost.

Rewrites the nginx tenant's Parquet files of a `strata-bench run` with pyarrow, varying one
setting at a time (zstd level, page size, encodings, sort order, typed columns parsed from the
line, ...), and prints bytes per record and the ratio to the raw lines. Each hour file is
rewritten separately, as Strata stores one file per hour, and the sizes summed. The raw size is
that of the stored bodies, one line each plus its newline: the generator's lines exactly. Files
that store lines by field are read back with each line rebuilt (`with_lines`), so the
experiments start from the table layout.

    .venv/bin/python bench/peers/nginx_layouts.py base6 lvl19 typed6_best_ra
    NGINX_OBJECTS=/tmp/bench-work/ingest-grpc/objects .venv/bin/python bench/peers/nginx_layouts.py ...

`NGINX_OBJECTS` is the node's local object store (default: the quick suite's gRPC node under
/tmp/bench-work); `NGINX_RESULTS`, when set, is a file the results are appended to as JSON
lines. The experiments are the keys of EXPERIMENTS below. Used for docs/BENCHMARKS.md
("nginx: where the bytes go").
"""
import collections, glob, io, json, os, re, sys, time

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

OBJECTS = os.environ.get('NGINX_OBJECTS', '/tmp/bench-work/ingest-grpc/objects')
# NGINX_TENANT=app-logs runs the same experiments on the application logs.
TENANT = os.environ.get('NGINX_TENANT', 'nginx-logs')
SRC = f'{OBJECTS}/tenant={TENANT}/signal=logs/**/*.parquet'
FILES = sorted(glob.glob(SRC, recursive=True))
FIELDS = 12
LINE_COLUMNS = ['body_template'] + [f'body_{kind}_{k}' for k in range(FIELDS) for kind in ('text', 'number')]


def render(marker, text, number):
    """A field's text (storage/src/lines.rs): 0x10 text, 0x11 integer, 0x12 IPv4, 0x12 + s a decimal."""
    if marker == 0x10:
        return text
    if marker == 0x11:
        return str(number)
    if marker == 0x12:
        return '.'.join(str((number >> shift) & 255) for shift in (24, 16, 8, 0))
    scale = marker - 0x12
    digits = str(abs(number)).rjust(scale + 1, '0')
    return ('-' if number < 0 else '') + digits[:-scale] + '.' + digits[-scale:]


def with_lines(t):
    """A file read back in the table layout: each line stored by field rebuilt into `body`."""
    if 'body_template' not in t.column_names:
        return t
    cols = {c: t[c].to_pylist() for c in LINE_COLUMNS + ['body']}
    out = []
    for r, template in enumerate(cols['body_template']):
        if cols['body'][r] is not None or template is None:
            out.append(cols['body'][r])
            continue
        line, k = [], 0
        for ch in template:
            if 0x10 <= ord(ch) <= 0x1b:
                line.append(render(ord(ch), cols[f'body_text_{k}'][r], cols[f'body_number_{k}'][r]))
                k += 1
            else:
                line.append(ch)
        out.append(''.join(line))
    t = t.set_column(t.schema.get_field_index('body'), 'body', pa.array(out, pa.string()))
    return t.drop_columns(LINE_COLUMNS)


TABLES = [with_lines(pq.read_table(f)) for f in FILES]
ROWS = sum(len(t) for t in TABLES)
# The raw log file: every body as a line.
RAW_BYTES = sum(pc.sum(pc.binary_length(t['body'])).as_py() + len(t) for t in TABLES)
RAW_PER_REC = RAW_BYTES / ROWS

TS_COLS = ['time', 'observed_time']
MAP_LEAVES = ['resource_attributes.key_value.key', 'resource_attributes.key_value.value',
              'attributes.key_value.key', 'attributes.key_value.value']


def strata_opts(level=6):
    """pyarrow equivalent of storage/src/parquet_file.rs writer_properties(Logs, level)."""
    return dict(
        compression='zstd', compression_level=level, version='2.6', data_page_version='1.0',
        use_dictionary=True, write_statistics=True, row_group_size=128 * 1024,
        column_encoding={c: 'DELTA_BINARY_PACKED' for c in TS_COLS},
        _no_dict=list(TS_COLS),
        bloom_filter_options={'trace_id': {'fpp': 0.01}},
    )


def write(table, opts):
    opts = dict(opts)
    no_dict = set(opts.pop('_no_dict', []))
    enc = dict(opts.get('column_encoding') or {})
    # columns with an explicit encoding must not use dictionary
    no_dict |= set(enc)
    cols = leaf_paths(table.schema)
    if opts.get('use_dictionary', True) is True:
        opts['use_dictionary'] = [c for c in cols if c not in no_dict]
    elif isinstance(opts['use_dictionary'], list):
        opts['use_dictionary'] = [c for c in opts['use_dictionary'] if c not in no_dict]
    enc = {k: v for k, v in enc.items() if k in cols}
    opts['column_encoding'] = enc or None
    if 'bloom_filter_options' in opts:
        opts['bloom_filter_options'] = {k: v for k, v in opts['bloom_filter_options'].items() if k in cols} or None
    buf = io.BytesIO()
    pq.write_table(table, buf, **opts)
    return buf.getvalue()


def leaf_paths(schema):
    out = []
    def walk(prefix, t):
        if pa.types.is_map(t):
            walk(prefix + ['key_value'], pa.struct([pa.field('key', t.key_type), pa.field('value', t.item_type)]))
        elif pa.types.is_struct(t):
            for f in t:
                walk(prefix + [f.name], f.type)
        elif pa.types.is_list(t):
            walk(prefix + ['list'], pa.struct([pa.field('element', t.value_type)]))
        else:
            out.append('.'.join(prefix))
    for f in schema:
        walk([f.name], f.type)
    # pyarrow accepts the top-level names for flat columns; for nested we return leaf paths
    return out


def measure(name, transform=None, opts=None, note=''):
    opts = opts or strata_opts()
    total = 0
    percol = collections.Counter()
    t0 = time.time()
    for t in TABLES:
        tt = transform(t) if transform else t
        data = write(tt, opts)
        total += len(data)
        md = pq.ParquetFile(io.BytesIO(data)).metadata
        for rg in range(md.num_row_groups):
            r = md.row_group(rg)
            for c in range(r.num_columns):
                col = r.column(c)
                percol[col.path_in_schema] += col.total_compressed_size
    per = total / ROWS
    top = {k: round(v / ROWS, 3) for k, v in percol.most_common(6)}
    res = dict(name=name, bytes=total, bytes_per_record=round(per, 3), ratio=round(RAW_PER_REC / per, 2),
               secs=round(time.time() - t0, 1), top_columns=top, note=note)
    print(json.dumps(res), flush=True)
    if os.environ.get('NGINX_RESULTS'):
        with open(os.environ['NGINX_RESULTS'], 'a') as f:
            f.write(json.dumps(res) + '\n')
    return res


# ---------- transforms ----------
def sort_by(*keys):
    def f(t):
        return t.take(pc.sort_indices(t, sort_keys=[(k, 'ascending') for k in keys]))
    return f


def with_pod(t):
    ra = t['resource_attributes'].combine_chunks()
    # k8s.pod.name value per row (entry index 5 of 11, but look it up properly)
    keys = ra.keys.to_pylist(); vals = ra.items.to_pylist(); offs = ra.offsets.to_pylist()
    pods = []
    for i in range(len(t)):
        pod = None
        for j in range(offs[i], offs[i + 1]):
            if keys[j] == 'k8s.pod.name':
                pod = vals[j]
        pods.append(pod)
    return t.append_column('_pod', pa.array(pods, pa.string()))


def sort_service_pod_time(t):
    t = with_pod(t)
    t = t.take(pc.sort_indices(t, sort_keys=[('service_name', 'ascending'), ('_pod', 'ascending'),
                                              ('time', 'ascending'), ('observed_time', 'ascending')]))
    return t.drop_columns(['_pod'])


def drop(*names):
    def f(t):
        return t.drop_columns(list(names))
    return f


def chain(*fs):
    def f(t):
        for g in fs:
            t = g(t)
        return t
    return f


def resattr_as_string(t):
    """resource_attributes stored as one (dictionary-encodable) JSON string per row."""
    ra = t['resource_attributes'].combine_chunks()
    keys = ra.keys.to_pylist(); vals = ra.items.to_pylist(); offs = ra.offsets.to_pylist()
    s = [json.dumps(dict(zip(keys[offs[i]:offs[i + 1]], vals[offs[i]:offs[i + 1]])), separators=(',', ':'))
         for i in range(len(t))]
    i = t.schema.get_field_index('resource_attributes')
    return t.set_column(i, 'resource_attributes', pa.array(s, pa.string()))


LINE = re.compile(r'^(\S+) - - \[([^\]]+)\] "(\S+) (\S+) (HTTP/[\d.]+)" (\d+) (\d+) "([^"]*)" "([^"]*)" rt=(\S+)$')


def body_fields(t, keep_ts=False):
    """Body split into typed columns (the nginx combined format + rt); the line is rebuilt from them
    and `time`. Checks that every line round-trips exactly."""
    bodies = t['body'].to_pylist()
    cols = collections.defaultdict(list)
    ts = t['time'].cast(pa.int64()).to_pylist()
    import datetime
    for b, tn in zip(bodies, ts):
        m = LINE.match(b)
        assert m, b
        ip, stamp, method, path, proto, status, nbytes, ref, ua, rt = m.groups()
        want = datetime.datetime.fromtimestamp(tn // 10**9, datetime.timezone.utc).strftime('%d/%b/%Y:%H:%M:%S +0000')
        assert stamp == want, (stamp, want)
        # round-trip check
        rebuilt = f'{ip} - - [{stamp}] "{method} {path} {proto}" {status} {nbytes} "{ref}" "{ua}" rt={rt}'
        assert rebuilt == b
        assert str(int(nbytes)) == nbytes and str(int(status)) == status
        cols['ip'].append(ip); cols['method'].append(method); cols['path'].append(path)
        cols['protocol'].append(proto); cols['status'].append(int(status)); cols['bytes'].append(int(nbytes))
        cols['referer'].append(ref); cols['user_agent'].append(ua); cols['rt'].append(rt)
        if keep_ts:
            cols['stamp'].append(stamp)
    i = t.schema.get_field_index('body')
    t = t.remove_column(i)
    types = dict(status=pa.int32(), bytes=pa.int64())
    for k, v in cols.items():
        t = t.append_column(k, pa.array(v, types.get(k, pa.string())))
    return t


def body_without_timestamp(t):
    """Body with the `[dd/Mon/yyyy:HH:MM:SS +0000]` part removed (rebuildable from `time`)."""
    bodies = t['body'].to_pylist()
    out = [re.sub(r' \[[^\]]+\] ', ' [] ', b, count=1) for b in bodies]
    i = t.schema.get_field_index('body')
    return t.set_column(i, 'body', pa.array(out, pa.string()))


def O(level=6, **kw):
    o = strata_opts(level)
    nd = kw.pop('_no_dict_extra', [])
    o['_no_dict'] = o['_no_dict'] + nd
    enc = kw.pop('_enc_extra', {})
    o['column_encoding'] = {**o['column_encoding'], **enc}
    o.update(kw)
    return o


MB = 1 << 20
SORT_TIME_OBS = sort_by('service_name', 'time', 'observed_time')
EXPERIMENTS = {
    # baseline and zstd levels
    'base6': lambda: measure('strata settings, zstd 6 (as compaction)', opts=O(6)),
    'base3': lambda: measure('strata settings, zstd 3 (as flush)', opts=O(3)),
    'lvl9': lambda: measure('zstd 9', opts=O(9)),
    'lvl15': lambda: measure('zstd 15', opts=O(15)),
    'lvl19': lambda: measure('zstd 19', opts=O(19)),
    'lvl22': lambda: measure('zstd 22', opts=O(22)),
    # page size
    'page8': lambda: measure('data page 8 MiB, zstd 6', opts=O(6, data_page_size=8 * MB)),
    'page64': lambda: measure('data page 64 MiB (1 page/chunk), zstd 6', opts=O(6, data_page_size=64 * MB)),
    'page8_19': lambda: measure('data page 8 MiB, zstd 19', opts=O(19, data_page_size=8 * MB)),
    'page64_19': lambda: measure('data page 64 MiB, zstd 19', opts=O(19, data_page_size=64 * MB)),
    'page256k': lambda: measure('data page 256 KiB, zstd 6', opts=O(6, data_page_size=256 * 1024)),
    # dictionary
    'nodict_body': lambda: measure('body dictionary off, zstd 6', opts=O(6, _no_dict_extra=['body'])),
    'nodict_body19': lambda: measure('body dictionary off, zstd 19', opts=O(19, _no_dict_extra=['body'])),
    'nodict_all': lambda: measure('dictionary off everywhere, zstd 6', opts=O(6, use_dictionary=False)),
    'dictpage8': lambda: measure('dictionary page limit 8 MiB, zstd 6', opts=O(6, dictionary_pagesize_limit=8 * MB)),
    # encodings for body
    'dba_body': lambda: measure('body DELTA_BYTE_ARRAY, zstd 6', opts=O(6, _enc_extra={'body': 'DELTA_BYTE_ARRAY'})),
    'dlba_body': lambda: measure('body DELTA_LENGTH_BYTE_ARRAY, zstd 6', opts=O(6, _enc_extra={'body': 'DELTA_LENGTH_BYTE_ARRAY'})),
    # row group
    'rg1m': lambda: measure('row group 1M rows, zstd 6', opts=O(6, row_group_size=1 << 20)),
    # sort orders
    'sort_obs': lambda: measure('sort (service,time,observed_time), zstd 6', SORT_TIME_OBS, O(6)),
    'sort_pod': lambda: measure('sort (service,pod,time,observed_time), zstd 6', sort_service_pod_time, O(6)),
    'sort_body': lambda: measure('sort (service,body), zstd 6', sort_by('service_name', 'body'), O(6)),
    'sort_body19p64': lambda: measure('sort (service,body), zstd 19, page 64 MiB, body no dict', sort_by('service_name', 'body'),
                                      O(19, data_page_size=64 * MB, _no_dict_extra=['body'])),
    # drop constant / derivable columns
    'drop_const': lambda: measure('drop all-constant/all-null columns, zstd 6', drop(
        'trace_id', 'span_id', 'flags', 'event_name', 'scope_name', 'scope_version', 'dropped_attributes_count',
        'attributes', 'severity_text'), O(6)),
    'drop_obs': lambda: measure('drop observed_time (reference only), zstd 6', drop('observed_time'), O(6)),
    'resattr_str': lambda: measure('resource_attributes as one JSON string/row, zstd 6', resattr_as_string, O(6)),
    'body_nots': lambda: measure('body without timestamp (rebuilt from time), zstd 6', body_without_timestamp, O(6)),
    'fields6': lambda: measure('body split into typed columns, zstd 6', body_fields, O(6)),
    'fields19': lambda: measure('body split into typed columns, zstd 19, page 64 MiB', body_fields, O(19, data_page_size=64 * MB)),
}

BIG = dict(data_page_size=64 * MB, max_rows_per_page=1 << 20)
BIG8 = dict(data_page_size=8 * MB, max_rows_per_page=1 << 20)
BODY_DLBA = {'body': 'DELTA_LENGTH_BYTE_ARRAY'}


def trunc_obs(unit_ns):
    def f(t):
        i = t.schema.get_field_index('observed_time')
        v = t['observed_time'].cast(pa.int64())
        v = pc.multiply(pc.divide(v, unit_ns), unit_ns)
        return t.set_column(i, t.schema.field(i), v.cast(t.schema.field(i).type))
    return f


EXPERIMENTS.update({
    'page8r': lambda: measure('data page 8 MiB (+row limit 1M), zstd 6', opts=O(6, **BIG8)),
    'page64r': lambda: measure('data page 64 MiB (+row limit 1M), zstd 6', opts=O(6, **BIG)),
    'page8r_nd': lambda: measure('data page 8 MiB, body no dict, zstd 6', opts=O(6, _no_dict_extra=['body'], **BIG8)),
    'page64r_nd': lambda: measure('data page 64 MiB, body no dict, zstd 6', opts=O(6, _no_dict_extra=['body'], **BIG)),
    'page8r_19': lambda: measure('data page 8 MiB, zstd 19', opts=O(19, **BIG8)),
    'page64r_19': lambda: measure('data page 64 MiB, zstd 19', opts=O(19, **BIG)),
    'page64r_nd19': lambda: measure('data page 64 MiB, body no dict, zstd 19', opts=O(19, _no_dict_extra=['body'], **BIG)),
    'page64r_nd9': lambda: measure('data page 64 MiB, body no dict, zstd 9', opts=O(9, _no_dict_extra=['body'], **BIG)),
    'page64r_nd15': lambda: measure('data page 64 MiB, body no dict, zstd 15', opts=O(15, _no_dict_extra=['body'], **BIG)),
    'page64r_nd22': lambda: measure('data page 64 MiB, body no dict, zstd 22', opts=O(22, _no_dict_extra=['body'], **BIG)),
    'dlba_64_6': lambda: measure('body DLBA, page 64 MiB, zstd 6', opts=O(6, _enc_extra=BODY_DLBA, **BIG)),
    'dlba_64_9': lambda: measure('body DLBA, page 64 MiB, zstd 9', opts=O(9, _enc_extra=BODY_DLBA, **BIG)),
    'dlba_64_15': lambda: measure('body DLBA, page 64 MiB, zstd 15', opts=O(15, _enc_extra=BODY_DLBA, **BIG)),
    'dlba_64_19': lambda: measure('body DLBA, page 64 MiB, zstd 19', opts=O(19, _enc_extra=BODY_DLBA, **BIG)),
    'dlba_1_19': lambda: measure('body DLBA, page 1 MiB, zstd 19', opts=O(19, _enc_extra=BODY_DLBA)),
    'dlba_64_19_obs': lambda: measure('body DLBA, page 64 MiB, zstd 19, sort +observed_time', SORT_TIME_OBS, O(19, _enc_extra=BODY_DLBA, **BIG)),
    'dlba_64_19_obs_nots': lambda: measure('body DLBA w/o timestamp, page 64 MiB, zstd 19, sort +observed_time', chain(body_without_timestamp, SORT_TIME_OBS), O(19, _enc_extra=BODY_DLBA, **BIG)),
    'dlba_64_19_sortbody': lambda: measure('body DLBA, page 64 MiB, zstd 19, sort (service,body)', sort_by('service_name', 'body'), O(19, _enc_extra=BODY_DLBA, **BIG)),
    'dba_64_19_sortbody': lambda: measure('body DELTA_BYTE_ARRAY, page 64 MiB, zstd 19, sort (service,body)', sort_by('service_name', 'body'), O(19, _enc_extra={'body': 'DELTA_BYTE_ARRAY'}, **BIG)),
    'obs_ms': lambda: measure('observed_time truncated to ms (lossy), zstd 6', trunc_obs(10**6), O(6)),
    'obs_us': lambda: measure('observed_time truncated to us (lossy), zstd 6', trunc_obs(10**3), O(6)),
    'obs_ms_sort': lambda: measure('observed_time truncated to ms (lossy), sort +observed_time, zstd 6', chain(trunc_obs(10**6), SORT_TIME_OBS), O(6)),
})

FIELD_NAMES = ['ip', 'method', 'path', 'protocol', 'status', 'bytes', 'referer', 'user_agent', 'rt']


def fields_in_attributes(t):
    """Parsed fields as entries of the `attributes` map (what a collector regex_parser with
    parse_to: attributes produces), body dropped (null)."""
    f = body_fields(t)
    old = t['attributes'].combine_chunks()
    ok = old.keys.to_pylist(); ov = old.items.to_pylist(); oo = old.offsets.to_pylist()
    vals = {k: f[k].to_pylist() for k in FIELD_NAMES}
    maps = []
    for i in range(len(t)):
        m = list(zip(ok[oo[i]:oo[i + 1]], ov[oo[i]:oo[i + 1]]))
        m += [(k, str(vals[k][i])) for k in FIELD_NAMES]
        maps.append(m)
    j = t.schema.get_field_index('attributes')
    body = pa.nulls(len(t), pa.string())
    t = t.set_column(j, t.schema.field(j), pa.array(maps, t.schema.field(j).type))
    return t.set_column(t.schema.get_field_index('body'), 'body', body)


def ip_as_u32(t):
    ips = t['ip'].to_pylist()
    def enc(s):
        a, b, c, d = (int(x) for x in s.split('.'))
        assert f'{a}.{b}.{c}.{d}' == s
        return (a << 24) | (b << 16) | (c << 8) | d
    j = t.schema.get_field_index('ip')
    return t.set_column(j, 'ip', pa.array([enc(s) for s in ips], pa.uint32()))


def rt_as_int(t):
    rts = t['rt'].to_pylist()
    def enc(s):
        v = int(s.replace('.', ''))
        assert f'{v / 1000:.3f}' == s, s
        return v
    j = t.schema.get_field_index('rt')
    return t.set_column(j, 'rt', pa.array([enc(s) for s in rts], pa.int32()))


NUM = re.compile(r'\d+')


def body_template(t):
    """Generic (format-agnostic) split: body -> template (digit runs replaced by \\x11) + the digit
    runs in columns v0..vN (strings, null when the line has fewer)."""
    bodies = t['body'].to_pylist()
    tmpl, vs = [], []
    for b in bodies:
        tmpl.append(NUM.sub('\x11', b))
        vs.append(NUM.findall(b))
    n = max(len(v) for v in vs)
    j = t.schema.get_field_index('body')
    t = t.set_column(j, 'body', pa.array(tmpl, pa.string()))
    for k in range(n):
        t = t.append_column(f'v{k}', pa.array([v[k] if k < len(v) else None for v in vs], pa.string()))
    return t


FIELDS_BSS = {'bytes': 'BYTE_STREAM_SPLIT'}
EXPERIMENTS.update({
    'fields_attrs6': lambda: measure('parsed fields in attributes map, body null, zstd 6', fields_in_attributes, O(6)),
    'fields_attrs19': lambda: measure('parsed fields in attributes map, body null, zstd 19, page 64 MiB', fields_in_attributes, O(19, **BIG)),
    'fields6_obs': lambda: measure('typed columns, sort +observed_time, zstd 6', chain(body_fields, SORT_TIME_OBS), O(6)),
    'fields9_obs_big': lambda: measure('typed columns, sort +observed_time, zstd 9, page 64 MiB', chain(body_fields, SORT_TIME_OBS), O(9, **BIG)),
    'fields19_obs_big': lambda: measure('typed columns, sort +observed_time, zstd 19, page 64 MiB', chain(body_fields, SORT_TIME_OBS), O(19, **BIG)),
    'fields6_obs_ipnd': lambda: measure('typed columns, sort +obs, ip no dict, zstd 6', chain(body_fields, SORT_TIME_OBS), O(6, _no_dict_extra=['ip'])),
    'fields6_obs_ipu32': lambda: measure('typed columns, sort +obs, ip as uint32, zstd 6', chain(body_fields, SORT_TIME_OBS, ip_as_u32), O(6)),
    'fields6_obs_rtint': lambda: measure('typed columns, sort +obs, rt as int ms, zstd 6', chain(body_fields, SORT_TIME_OBS, rt_as_int), O(6)),
    'fields6_obs_bss': lambda: measure('typed columns, sort +obs, bytes BYTE_STREAM_SPLIT, zstd 6', chain(body_fields, SORT_TIME_OBS), O(6, _enc_extra=FIELDS_BSS)),
    'fields6_obs_bytesnd': lambda: measure('typed columns, sort +obs, bytes no dict, zstd 6', chain(body_fields, SORT_TIME_OBS), O(6, _no_dict_extra=['bytes'])),
    'tmpl6': lambda: measure('generic template+digit-run columns, zstd 6', body_template, O(6)),
    'tmpl19': lambda: measure('generic template+digit-run columns, sort +obs, zstd 19, page 64 MiB', chain(body_template, SORT_TIME_OBS), O(19, **BIG)),
})

TYPED = chain(body_fields, SORT_TIME_OBS, ip_as_u32)
EXPERIMENTS.update({
    'typed_best6': lambda: measure('typed columns, sort +obs, ip uint32, bytes BSS, zstd 6', TYPED, O(6, _enc_extra=FIELDS_BSS)),
    'typed_best6_ipbss': lambda: measure('typed columns, sort +obs, ip uint32 BSS, bytes BSS, zstd 6', TYPED, O(6, _enc_extra={**FIELDS_BSS, 'ip': 'BYTE_STREAM_SPLIT'})),
    'typed_best9big': lambda: measure('typed columns, sort +obs, ip uint32, bytes BSS, zstd 9, page 64 MiB', TYPED, O(9, _enc_extra=FIELDS_BSS, **BIG)),
    'typed_best19': lambda: measure('typed columns, sort +obs, ip uint32, bytes BSS, zstd 19', TYPED, O(19, _enc_extra=FIELDS_BSS)),
    'typed_best19big': lambda: measure('typed columns, sort +obs, ip uint32, bytes BSS, zstd 19, page 64 MiB', TYPED, O(19, _enc_extra=FIELDS_BSS, **BIG)),
    'typed_best3': lambda: measure('typed columns, sort +obs, ip uint32, bytes BSS, zstd 3', TYPED, O(3, _enc_extra=FIELDS_BSS)),
    'typed_best6_noobs': lambda: measure('typed columns, ip uint32, bytes BSS, zstd 6, observed_time dropped (reference)', chain(TYPED, drop('observed_time')), O(6, _enc_extra=FIELDS_BSS)),
})

EXPERIMENTS.update({
    'typed19_plain': lambda: measure('typed columns only, zstd 19 (Strata sort, default pages)', body_fields, O(19)),
    'typed19_bss': lambda: measure('typed columns, bytes BSS, zstd 19', body_fields, O(19, _enc_extra=FIELDS_BSS)),
    'typed19_bss_ip': lambda: measure('typed columns, ip uint32, bytes BSS, zstd 19', chain(body_fields, ip_as_u32), O(19, _enc_extra=FIELDS_BSS)),
    'typed6_bss_ip': lambda: measure('typed columns, ip uint32, bytes BSS, zstd 6', chain(body_fields, ip_as_u32), O(6, _enc_extra=FIELDS_BSS)),
    'typed12_best': lambda: measure('typed columns, sort +obs, ip uint32, bytes BSS, zstd 12', TYPED, O(12, _enc_extra=FIELDS_BSS)),
    'typed9_best': lambda: measure('typed columns, sort +obs, ip uint32, bytes BSS, zstd 9', TYPED, O(9, _enc_extra=FIELDS_BSS)),
    'typed6_best_ra': lambda: measure('typed, sort +obs, ip uint32, bytes BSS, resource attrs as 1 string, zstd 6', chain(TYPED, resattr_as_string), O(6, _enc_extra=FIELDS_BSS)),
    'typed19_best_ra': lambda: measure('typed, sort +obs, ip uint32, bytes BSS, resource attrs as 1 string, zstd 19', chain(TYPED, resattr_as_string), O(19, _enc_extra=FIELDS_BSS)),
    'typed6_best_drop': lambda: measure('typed, sort +obs, ip uint32, bytes BSS, constant/derivable cols dropped, zstd 6', chain(TYPED, drop('trace_id', 'span_id', 'flags', 'event_name', 'scope_name', 'scope_version', 'dropped_attributes_count', 'attributes', 'severity_text')), O(6, _enc_extra=FIELDS_BSS)),
})

# ---------- lines stored by field (storage/src/lines.rs), and the variant not kept ----------
TOKEN = re.compile(r'"[^"]*"|\[[^\]]*\]|[^ ]+')
IPV4 = re.compile(r'^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$')
INTEGER = re.compile(r'^(0|[1-9][0-9]{0,17})$')
DECIMAL = re.compile(r'^(0|[1-9][0-9]{0,14})\.([0-9]{1,9})$')
MARKER = re.compile('[\x10-\x1b]')


def lines_by_field(every_token):
    """`body` split into a template and positional fields, a text and a number column per
    position (IPv4 addresses, integers and decimals as numbers): with `every_token`, each token
    is a field; else only tokens with a digit (what storage/src/lines.rs does, without its
    logfmt-quoted values and negative numbers). Checks that every line is rebuilt."""
    def field(v, template, numbers, texts):
        if not every_token and not re.search('[0-9]', v):
            template.append(v)
            return
        m = IPV4.match(v)
        if m and all(str(int(g)) == g and int(g) < 256 for g in m.groups()):
            a, b, c, d = map(int, m.groups())
            template.append('\x12'); numbers.append((a << 24) | (b << 16) | (c << 8) | d); texts.append(None)
        elif INTEGER.match(v):
            template.append('\x11'); numbers.append(int(v)); texts.append(None)
        elif (m := DECIMAL.match(v)):
            template.append(chr(0x12 + len(m.group(2)))); numbers.append(int(m.group(1) + m.group(2))); texts.append(None)
        else:
            template.append('\x10'); numbers.append(None); texts.append(v)

    def split(line):
        template, numbers, texts, pos = [], [], [], 0
        for m in TOKEN.finditer(line):
            start, end = m.span()
            tok = m.group()
            template.append(line[pos:start])
            if tok[0] in '"[' and len(tok) >= 2:
                template.append(tok[0]); field(tok[1:-1], template, numbers, texts); template.append(tok[-1])
            elif '=' in tok[1:]:
                k, v = tok.split('=', 1)
                template.append(k + '='); field(v, template, numbers, texts)
            else:
                field(tok, template, numbers, texts)
            pos = end
        template.append(line[pos:])
        return ''.join(template), numbers, texts

    def f(t):
        out = {c: [] for c in LINE_COLUMNS}
        rest = []
        for line in t['body'].to_pylist():
            template, numbers, texts = (None, [], []) if line is None else split(line)
            if line is None or not numbers or len(numbers) > FIELDS or MARKER.search(line):
                template, numbers, texts = None, [], []
            k, parts = 0, []
            for ch in template or '':
                if 0x10 <= ord(ch) <= 0x1b:
                    parts.append(render(ord(ch), texts[k], numbers[k])); k += 1
                else:
                    parts.append(ch)
            assert template is None or ''.join(parts) == line, (line, template)
            rest.append(line if template is None else None)
            out['body_template'].append(template)
            for k in range(FIELDS):
                out[f'body_text_{k}'].append(texts[k] if k < len(texts) else None)
                out[f'body_number_{k}'].append(numbers[k] if k < len(numbers) else None)
        t = t.set_column(t.schema.get_field_index('body'), 'body', pa.array(rest, pa.string()))
        for c in LINE_COLUMNS:
            t = t.append_column(c, pa.array(out[c], pa.int64() if 'number' in c else pa.string()))
        return t
    return f


LINE_NUMBERS = [f'body_number_{k}' for k in range(FIELDS)]
EXPERIMENTS.update({
    'lines_every_token': lambda: measure('every token a field, zstd 6', lines_by_field(True), O(6)),
    'lines': lambda: measure('tokens with a digit as fields, sort +obs, zstd 6', chain(SORT_TIME_OBS, lines_by_field(False)), O(6)),
    'lines_rg': lambda: measure('tokens with a digit as fields, sort +obs, one row group per hour, zstd 6',
                                chain(SORT_TIME_OBS, lines_by_field(False)), O(6, row_group_size=1 << 20)),
    'lines_bss': lambda: measure('tokens with a digit as fields, sort +obs, numbers BYTE_STREAM_SPLIT, zstd 6',
                                 chain(SORT_TIME_OBS, lines_by_field(False)), O(6, _enc_extra={c: 'BYTE_STREAM_SPLIT' for c in LINE_NUMBERS})),
    'lines9': lambda: measure('tokens with a digit as fields, sort +obs, zstd 9', chain(SORT_TIME_OBS, lines_by_field(False)), O(9)),
})

if __name__ == '__main__':
    if not FILES:
        sys.exit(f'no {TENANT} Parquet files under {OBJECTS}')
    unknown = [name for name in sys.argv[1:] if name not in EXPERIMENTS]
    if unknown or len(sys.argv) < 2:
        sys.exit(f'experiments: {" ".join(EXPERIMENTS)}' + (f' (unknown: {" ".join(unknown)})' if unknown else ''))
    print('files', len(FILES), 'rows', ROWS, 'raw bytes/line', round(RAW_PER_REC, 3), flush=True)
    for name in sys.argv[1:]:
        EXPERIMENTS[name]()
