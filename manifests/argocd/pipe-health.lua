-- Argo CD health of a weir.dev Pipe, from the kstatus conditions weir writes:
-- Stalled=True: Degraded; Reconciling=True: Progressing (Suspended while a plan awaits approval);
-- Ready=True: Healthy; a spec weir has not observed yet: Progressing. (Custom scripts get no string library.)
local hs = {status = "Progressing", message = "Waiting for weir to report status"}
if obj.status == nil then return hs end
local function condition(t)
  for _, c in ipairs(obj.status.conditions or {}) do
    if c.type == t then return c end
  end
  return nil
end
local function says(c)
  if c.message ~= nil and c.message ~= "" then return c.reason .. ": " .. c.message end
  return c.reason
end
if obj.status.observedGeneration == nil or obj.status.observedGeneration < obj.metadata.generation then
  hs.message = "Waiting for weir to observe generation " .. obj.metadata.generation
  return hs
end
local stalled, reconciling, ready = condition("Stalled"), condition("Reconciling"), condition("Ready")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = says(stalled)
elseif reconciling ~= nil and reconciling.status == "True" then
  hs.message = says(reconciling)
  if reconciling.reason == "AwaitingApproval" then hs.status = "Suspended" end
elseif ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = says(ready)
elseif ready ~= nil then
  hs.message = says(ready)
end
return hs
