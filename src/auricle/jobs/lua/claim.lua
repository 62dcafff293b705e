-- Lease a queued job, or a running one whose lease has passed (its worker died), to a worker.
-- KEYS[1] job hash, KEYS[2] state-set prefix, KEYS[3] events stream
-- ARGV[1] job id, ARGV[2] worker id, ARGV[3] now, ARGV[4] lease_until
-- Returns {"ok", previous status} or {reason[, lease_until]} where reason is missing|cancelled|leased|<status>.
local status = redis.call("HGET", KEYS[1], "status")
if not status then
    return {"missing"}
end
if redis.call("HGET", KEYS[1], "cancel_requested") == "1" then
    return {"cancelled"}
end
if status == "running" then
    local lease = redis.call("HGET", KEYS[1], "lease_until") or "0"
    if tonumber(lease) >= tonumber(ARGV[3]) then
        return {"leased", lease}
    end
elseif status ~= "queued" then
    return {status}
end
redis.call("SREM", KEYS[2] .. status, ARGV[1])
redis.call("SADD", KEYS[2] .. "running", ARGV[1])
redis.call("HSET", KEYS[1], "status", "running", "worker", ARGV[2], "lease_until", ARGV[4],
    "started_at", ARGV[3], "stage", "queued", "progress", "0")
redis.call("HINCRBY", KEYS[1], "attempts", 1)
redis.call("DEL", KEYS[3])
return {"ok", status}
