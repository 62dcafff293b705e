-- Store one job change decided in Python (auricle.jobs.base), if the job is still at the version it was read
-- at: a compare-and-set. The script decides nothing about job states; it keeps the indexes in step with the hash.
-- KEYS[1] job hash, KEYS[2] events stream, KEYS[3] result key, KEYS[4] audio key, KEYS[5] state-set prefix,
-- KEYS[6] queue (sorted set, by queue sequence), KEYS[7] queue sequence counter, KEYS[8] listing index,
-- KEYS[9] pending webhook events (sorted set, by when due), KEYS[10] sync requests' jobs (set)
-- ARGV[1] job id, ARGV[2] expected version ("new": the job must not exist yet), ARGV[3] ttl seconds,
-- ARGV[4] JSON flags {reset_events, requeue, drop_result, finished, index: created_at or false,
--   hook_due: when the job's webhook event is due or false, sync: a sync request's job},
-- ARGV[5] result JSON ("" for none), ARGV[6] JSON array of event JSON strings,
-- ARGV[7..] the job hash as field, value pairs.
-- Returns the new version, or -1 when the job changed, vanished or already exists (the caller reads again).
local exists = redis.call("EXISTS", KEYS[1]) == 1
local version = redis.call("HGET", KEYS[1], "_v") or "0"
if ARGV[2] == "new" then
    if exists then
        return -1
    end
elseif not exists or version ~= ARGV[2] then
    return -1
end
local flags = cjson.decode(ARGV[4])
local old = redis.call("HGET", KEYS[1], "status")
local new_version = tonumber(version) + 1
redis.call("DEL", KEYS[1])
redis.call("HSET", KEYS[1], "_v", new_version, unpack(ARGV, 7))
local status = redis.call("HGET", KEYS[1], "status")
if old then
    redis.call("SREM", KEYS[5] .. old, ARGV[1])
end
redis.call("SADD", KEYS[5] .. status, ARGV[1])
if status ~= "queued" then
    redis.call("ZREM", KEYS[6], ARGV[1])
elseif flags.requeue then
    redis.call("ZADD", KEYS[6], redis.call("INCR", KEYS[7]), ARGV[1])
end
if flags.index then
    redis.call("ZADD", KEYS[8], flags.index, ARGV[1])
end
if flags.sync then
    redis.call("SADD", KEYS[10], ARGV[1])
end
if flags.hook_due then
    redis.call("ZADD", KEYS[9], flags.hook_due, ARGV[1])
else
    redis.call("ZREM", KEYS[9], ARGV[1])
end
if flags.drop_result then
    redis.call("DEL", KEYS[3])
end
if ARGV[5] ~= "" then
    redis.call("SET", KEYS[3], ARGV[5])
end
if flags.reset_events then
    redis.call("DEL", KEYS[2])
end
for _, event in ipairs(cjson.decode(ARGV[6])) do
    redis.call("XADD", KEYS[2], "MAXLEN", "~", "20000", "*", "e", event)
end
-- A finished job's keys expire ttl seconds after its last change; an active job's keys never do.
for i = 1, 4 do
    if flags.finished then
        redis.call("EXPIRE", KEYS[i], ARGV[3])
    else
        redis.call("PERSIST", KEYS[i])
    end
end
return new_version
