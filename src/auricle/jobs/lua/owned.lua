-- A worker-side change of a job it holds: heartbeat, progress report, or finish (succeeded/failed).
-- KEYS[1] job hash, KEYS[2] state-set prefix, KEYS[3] events stream, KEYS[4] result key
-- ARGV[1] job id, ARGV[2] worker id, ARGV[3] action (heartbeat|report|finish), ARGV[4] ttl seconds,
-- ARGV[5] heartbeat: new lease_until | report: event JSON | finish: new status (succeeded|failed)
-- ARGV[6] report: stage | finish: result JSON ("" for none)
-- ARGV[7] report: progress; ARGV[7..] finish: field/value pairs to set
-- Returns -1 when the job is gone or held by another worker; heartbeat: 1 when cancel was asked else 0;
-- report: 0; finish: the status stored (a failure after a cancel request is stored as cancelled).
if redis.call("HGET", KEYS[1], "status") ~= "running" or redis.call("HGET", KEYS[1], "worker") ~= ARGV[2] then
    return -1
end
local action = ARGV[3]
if action == "heartbeat" then
    redis.call("HSET", KEYS[1], "lease_until", ARGV[5])
    if redis.call("HGET", KEYS[1], "cancel_requested") == "1" then
        return 1
    end
    return 0
end
if action == "report" then
    redis.call("HSET", KEYS[1], "stage", ARGV[6], "progress", ARGV[7])
    redis.call("XADD", KEYS[3], "MAXLEN", "~", "20000", "*", "e", ARGV[5])
    return 0
end
local new = ARGV[5]
local cancelled = redis.call("HGET", KEYS[1], "cancel_requested") == "1"
if new == "failed" and cancelled then
    new = "cancelled"
end
for i = 7, #ARGV, 2 do
    redis.call("HSET", KEYS[1], ARGV[i], ARGV[i + 1])
end
if new == "cancelled" then
    redis.call("HDEL", KEYS[1], "error", "error_type")
end
if ARGV[6] ~= "" then
    redis.call("SET", KEYS[4], ARGV[6], "EX", ARGV[4])
end
redis.call("HSET", KEYS[1], "status", new)
redis.call("SREM", KEYS[2] .. "running", ARGV[1])
redis.call("SADD", KEYS[2] .. new, ARGV[1])
return new
