-- Argo CD health check for esinference.io/InferenceEndpoint (docs/gitops.md).
--
-- Argo CD runs this with the live object in the global `obj` and expects a table
-- {status = ..., message = ...} back. Its Lua VM is gopher-lua (the Lua 5.1 dialect) with only
-- the base, table and os libraries loaded: no string.* or math.* functions are used here.
--
-- The operator writes status in the kstatus sense: status.observedGeneration, a `Ready`
-- condition that is always present, `Reconciling=True` only while a transient failure is
-- retried, `Stalled=True` only while a permanent failure waits for a change.
--
--   no status, or observedGeneration < generation  -> Progressing (the operator has not seen it)
--   Stalled=True                                    -> Degraded    (fix the object or a Secret)
--   Reconciling=True                                -> Progressing (retried with backoff)
--   Ready=True                                      -> Healthy
--   Ready=False without Stalled/Reconciling         -> Degraded
--   Ready missing or Unknown                        -> Progressing
--   being deleted                                   -> Progressing, Degraded if Stalled
--
-- Reconciling is checked before Ready=True, as kstatus (Flux) does, so both tools agree.
-- The `Healthy` condition (the live probe) is not read: a provider outage does not make the
-- object Degraded (docs/gitops.md); a rejected rotation does, through Ready/Stalled.
-- Argo CD itself reports "Pending deletion" for any object with a deletionTimestamp without
-- running this script; the deletion branch serves other callers and keeps the script total.

local function find_condition(conditions, condition_type)
  if conditions == nil then
    return nil
  end
  for _, condition in ipairs(conditions) do
    if condition.type == condition_type then
      return condition
    end
  end
  return nil
end

local function is_true(condition)
  return condition ~= nil and condition.status == "True"
end

-- "Reason: message", or whichever of the two is set.
local function describe(condition)
  local reason = condition.reason
  local message = condition.message
  if reason == nil or reason == "" then
    if message == nil or message == "" then
      return "condition " .. tostring(condition.type) .. " is " .. tostring(condition.status)
    end
    return message
  end
  if message == nil or message == "" then
    return reason
  end
  return reason .. ": " .. message
end

hs = {}

local metadata = obj.metadata or {}
local status = obj.status or {}
local generation = metadata.generation
local observed = status.observedGeneration

-- Does status describe the current spec? Without observedGeneration the operator has not
-- reconciled this object yet.
local current = observed ~= nil and (generation == nil or observed >= generation)

local ready = find_condition(status.conditions, "Ready")
local reconciling = find_condition(status.conditions, "Reconciling")
local stalled = find_condition(status.conditions, "Stalled")

if metadata.deletionTimestamp ~= nil then
  -- Deleting bumps metadata.generation, so a Stalled condition counts only once the operator
  -- has reported on the deletion itself (for example: the Elasticsearch credentials Secret
  -- was deleted first and the endpoint cannot be removed).
  if current and is_true(stalled) then
    hs.status = "Degraded"
    hs.message = "Deletion stalled: " .. describe(stalled)
  elseif current and is_true(reconciling) then
    hs.status = "Progressing"
    hs.message = "Deleting, retrying: " .. describe(reconciling)
  else
    hs.status = "Progressing"
    hs.message = "Deleting: waiting for the operator to remove the inference endpoint"
  end
  return hs
end

if not current then
  hs.status = "Progressing"
  if generation ~= nil then
    hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  else
    hs.message = "Waiting for the operator to observe the object"
  end
  return hs
end

if is_true(stalled) then
  hs.status = "Degraded"
  hs.message = describe(stalled)
  return hs
end

if is_true(reconciling) then
  hs.status = "Progressing"
  hs.message = describe(reconciling)
  return hs
end

if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report the Ready condition"
  return hs
end

if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
  return hs
end

if ready.status == "False" then
  hs.status = "Degraded"
  hs.message = describe(ready)
  return hs
end

hs.status = "Progressing"
hs.message = describe(ready)
return hs
