# A scripted session of redis-py against the kv guest (Debian's python3-redis 4.3, standing in
# for "redis-py from PyPI", which this machine cannot reach). Prints one JSON object: what the
# client saw for each command family, normalised so the test can compare it across clients.
#   python3 redis_py_session.py session <host> <port> <protocol 2|3> <prefix>
#   python3 redis_py_session.py writes <host> <port> <protocol> <prefix> <count>   (SETs through a failover: the acknowledged ones, with when)
import json
import sys
import time

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

mode, host, port, proto, p = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]

kw = dict(host=host, port=port, decode_responses=True, socket_timeout=5, socket_connect_timeout=2,
          retry=Retry(ExponentialBackoff(cap=1, base=0.05), 40), retry_on_error=[redis.ConnectionError, redis.TimeoutError])
r = redis.Redis(**kw)


def session():
    out = {}
    if proto == 3:
        # python3-redis 4.3 speaks RESP2 only (its parser refuses a RESP3 map; redis-py 5+ has protocol=3): the
        # HELLO 3 reply is checked on a connection of its own, then the session goes on in RESP2
        import socket
        with socket.create_connection((host, port), timeout=5) as s:
            s.sendall(b'*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n')
            data = b''
            while b'modules' not in data:
                data += s.recv(4096)
            out['hello3'] = data.startswith(b'%7\r\n') and b'$5\r\nproto\r\n:3\r\n' in data
    out['ping'] = r.ping()
    r.client_setname(p + 'py')
    out['clientname'] = r.client_getname() == p + 'py'
    r.set(p + 's', 'hello')
    out['get'] = r.get(p + 's')
    out['setnx'] = [r.setnx(p + 's', 'x'), r.set(p + 's2', 'v', nx=True)]
    out['getset'] = r.getset(p + 's2', 'w')
    out['getdel'] = [r.getdel(p + 's2'), r.exists(p + 's2')]
    out['incr'] = [r.incr(p + 'n'), r.incrby(p + 'n', 10), r.decr(p + 'n')]
    r.set(p + 'e', 'v', ex=100)
    out['ttl'] = 99 <= r.ttl(p + 'e') <= 100
    out['expire'] = [r.expire(p + 's', 50), 49 <= r.ttl(p + 's') <= 50, r.persist(p + 's'), r.ttl(p + 's')]
    r.setex(p + 'e2', 30, 'v')
    out['getex'] = [r.getex(p + 'e2', persist=True), r.ttl(p + 'e2')]
    r.set(p + 'gone', 'v', px=1)
    time.sleep(0.05)
    out['expired'] = r.get(p + 'gone')
    r.hset(p + 'h', mapping={'a': '1', 'b': '2'})
    out['hash'] = [r.hgetall(p + 'h'), r.hget(p + 'h', 'a'), r.hincrby(p + 'h', 'c', 3), r.hdel(p + 'h', 'a'), sorted(r.hkeys(p + 'h'))]
    r.rpush(p + 'l', 'x', 'y', 'z')
    out['list'] = [r.lrange(p + 'l', 0, -1), r.lpop(p + 'l'), r.blpop([p + 'l'], 1), r.blpop([p + 'empty'], 0.1), r.llen(p + 'l')]
    r.sadd(p + 'set', 'a', 'b', 'c')
    out['set'] = [sorted(r.smembers(p + 'set')), r.sismember(p + 'set', 'a'), r.srem(p + 'set', 'c'), r.scard(p + 'set')]
    r.zadd(p + 'z', {'a': 1, 'b': 2.5})
    out['zset'] = [[[m, s] for m, s in r.zrange(p + 'z', 0, -1, withscores=True)], r.zscore(p + 'z', 'b'), r.zincrby(p + 'z', 1, 'a'), r.zrank(p + 'z', 'b')]
    out['scan'] = sorted(k for k in r.scan_iter(match=p + '*'))
    out['type'] = [r.type(p + 'h'), r.type(p + 'l'), r.type(p + 'set'), r.type(p + 'z'), r.type(p + 's')]
    pipe = r.pipeline(transaction=True)
    pipe.incr(p + 'tx').incr(p + 'tx').get(p + 'tx')
    out['multi'] = pipe.execute()
    with r.pipeline() as w:
        w.watch(p + 'tx')
        r.set(p + 'tx', '100')  # another client's write (a second connection of the pool)
        w.multi()
        w.set(p + 'tx', 'mine')
        try:
            w.execute()
            out['watch'] = 'committed'
        except redis.WatchError:
            out['watch'] = 'aborted'
    out['rename'] = [r.rename(p + 's', p + 's3'), r.copy(p + 's3', p + 's4'), r.get(p + 's4'), r.unlink(p + 's4')]
    out['info'] = r.info('replication')['role']
    try:
        r.hget(p + 's3', 'x')
        out['wrongtype'] = None
    except redis.ResponseError as e:
        out['wrongtype'] = str(e)
    return out


def writes(count):
    acked = []
    for i in range(count):
        k = p + 'w' + str(i)
        try:
            if r.set(k, str(i)):
                acked.append([k, time.time() * 1000])
        except redis.RedisError as e:
            print(json.dumps({'error': k + ': ' + str(e)}), file=sys.stderr)
    return {'acked': acked}


print(json.dumps(session() if mode == 'session' else writes(int(sys.argv[6]))))
