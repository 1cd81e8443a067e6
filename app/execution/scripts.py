"""The execution store's Lua scripts: each write is one atomic command, fenced by the
account's lease where it changes the account (``FENCE``)."""

CLAIM = """
-- KEYS: the alert.  ARGV: our claim (pending:<instance>:<token>), lease, instance key
-- prefix, our instance
local v = redis.call('get', KEYS[1])
if not v then
  redis.call('set', KEYS[1], ARGV[1], 'EX', ARGV[2])
  return 1
end
-- a claim of ours that nothing here is deciding (the caller checked: left by a failed
-- attempt, or a retried command's own), or of an engine whose heartbeat is gone
local holder = string.match(v, '^pending:(%w+):')
if holder and (holder == ARGV[4] or redis.call('exists', ARGV[3] .. holder) == 0) then
  redis.call('set', KEYS[1], ARGV[1], 'EX', ARGV[2])
  return 1
end
return 0
"""
FENCE = """
-- the account's lease must still be ours: a stalled engine whose lease another process
-- took over writes nothing (KEYS[#KEYS] is the lease, ARGV[#ARGV] our lease value or '')
local lease = ARGV[#ARGV]
if lease ~= '' and redis.call('GET', KEYS[#KEYS]) ~= lease then return -1 end
"""
SAVE_ORDERS = (
    FENCE
    + """
-- KEYS: orders stream, open set, recent zset, events channel, one key per order,
--       then (with a decision) the alert and the alerts stream; the lease
-- ARGV: n orders, maxlen, decision json or '', decision ttl, alerts maxlen,
--       our claim or '' (fencing), n trace pairs, trace pairs..., then per order:
--       id, order json, kind (new|terminal|''), created_at; our lease
local n, maxlen, decision, claim = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[6]
local alert = KEYS[5 + n]
if claim ~= '' then  -- fenced: the claim must still be ours
  local current = redis.call('GET', alert)
  if current == decision then return 1 end  -- a retried call whose first run was stored
  if current ~= claim then return 0 end
end
local trace_end = 7 + 2 * tonumber(ARGV[7])
for i = 0, n - 1 do  -- an order id is placed once: a replay never resets a stored order
  if ARGV[trace_end + 4 * i + 3] == 'new' and redis.call('EXISTS', KEYS[5 + i]) == 1 then
    return -2
  end
end
for i = 0, n - 1 do
  local a = trace_end + 4 * i
  local id, raw, kind = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local fields = {'order', raw}
  for t = 8, trace_end do fields[#fields + 1] = ARGV[t] end
  redis.call('SET', KEYS[5 + i], raw)
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*', unpack(fields))
  if kind == 'terminal' then
    redis.call('SREM', KEYS[2], id)
  elseif kind == 'new' then  -- indexes are written once, at creation
    redis.call('SADD', KEYS[2], id)
    redis.call('ZADD', KEYS[3], ARGV[a + 4], id)
  end
  redis.call('PUBLISH', KEYS[4], '{"type":"order","data":' .. raw .. '}')
end
if decision ~= '' then
  redis.call('SET', alert, decision, 'EX', ARGV[4])
  redis.call('XADD', KEYS[6 + n], 'MAXLEN', '~', ARGV[5], '*', 'decision', decision)
  redis.call('PUBLISH', KEYS[7 + n], decision)
end
return 1
"""
)
SAVE_FILLS = (
    FENCE
    + """
-- A batch of fills, their orders' transitions and the ledger after them, all or nothing.
-- KEYS: fills seen, fills stream, orders stream, open set, ledger, events channel, then
--       per fill: its order, its symbol's fill index; the lease
-- ARGV: n, maxlen, index cap, ledger json, n trace pairs, trace pairs..., then per fill:
--       fill id, fill json, order id, order json, terminal ('1'|''), earlier SUBMITTED
--       order json or '', fill time; our lease
-- Returns the (0-based) positions of fills booked before (a replay): then nothing is
-- written and the caller books the rest again without them; {} when stored.
local n = tonumber(ARGV[1])
local t = 5 + 2 * tonumber(ARGV[5])
local trace = {}
for i = 6, t do trace[#trace + 1] = ARGV[i] end
local dups, fresh, here = {}, {}, {}
for i = 0, n - 1 do
  local a = t + 7 * i
  local id = ARGV[a + 1]
  if here[id] then
    dups[#dups + 1] = i  -- twice in this batch
  elseif redis.call('SISMEMBER', KEYS[1], id) == 1 then
    -- booked before, or by this very call (retried after its reply was lost)
    if redis.call('GET', KEYS[7 + 2 * i]) ~= ARGV[a + 4] then dups[#dups + 1] = i end
  else
    fresh[#fresh + 1] = i
  end
  here[id] = true
end
if #dups > 0 then return dups end
for _, i in ipairs(fresh) do
  local a = t + 7 * i
  local fill, order = ARGV[a + 2], ARGV[a + 4]
  redis.call('SADD', KEYS[1], ARGV[a + 1])
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'fill', fill, unpack(trace))
  redis.call('ZADD', KEYS[8 + 2 * i], ARGV[a + 7], fill)
  redis.call('ZREMRANGEBYRANK', KEYS[8 + 2 * i], 0, -(tonumber(ARGV[3]) + 1))
  if ARGV[a + 6] ~= '' then
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '*', 'order', ARGV[a + 6], unpack(trace))
  end
  redis.call('SET', KEYS[7 + 2 * i], order)
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '*', 'order', order, unpack(trace))
  if ARGV[a + 5] == '1' then redis.call('SREM', KEYS[4], ARGV[a + 3]) end
  redis.call('PUBLISH', KEYS[6], '{"type":"fill","data":' .. fill .. '}')
  redis.call('PUBLISH', KEYS[6], '{"type":"order","data":' .. order .. '}')
end
if #fresh > 0 then redis.call('SET', KEYS[5], ARGV[4]) end
return {}
"""
)
SET_FENCED = (
    FENCE
    + """
-- KEYS: the key, the lease.  ARGV: value, our lease
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""
)
