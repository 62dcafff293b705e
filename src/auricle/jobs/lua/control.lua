-- A client-side state change: cancel or retry.
-- KEYS[1] job hash, KEYS[2] state-set prefix
-- ARGV[1] job id, ARGV[2] action (cancel|retry), ARGV[3] now
-- Returns the status after the change, or {"err", status} when the action does not fit, or "missing".
local status = redis.call("HGET", KEYS[1], "status")
if not status then
    return "missing"
end
local action = ARGV[2]
if action == "cancel" then
    if status ~= "queued" and status ~= "running" then
        return {"err", status}
    end
    redis.call("HSET", KEYS[1], "cancel_requested", "1")
    if status == "queued" then
        redis.call("HSET", KEYS[1], "status", "cancelled", "finished_at", ARGV[3])
        redis.call("SREM", KEYS[2] .. "queued", ARGV[1])
        redis.call("SADD", KEYS[2] .. "cancelled", ARGV[1])
        return "cancelled"
    end
    return "running"
end
if status ~= "failed" and status ~= "cancelled" then
    return {"err", status}
end
redis.call("HDEL", KEYS[1], "error", "error_type", "finished_at", "started_at", "lease_until", "stage", "worker")
redis.call("HSET", KEYS[1], "status", "queued", "cancel_requested", "0", "progress", "0")
redis.call("SREM", KEYS[2] .. status, ARGV[1])
redis.call("SADD", KEYS[2] .. "queued", ARGV[1])
return "queued"
