-- Test harness for the Argo CD health check (docs/gitops.md). Run with Debian's lua5.4:
--
--   lua5.4 docs/gitops/test/run.lua docs/gitops/argocd-health.lua \
--     docs/gitops/argocd-cm-snippet.yaml docs/gitops/test/cases/*.json
--
-- Each case file holds {"description", "object", "argocd": {"status", "message"}, ...}.
-- The health script runs the way Argo CD runs it: a fresh environment per object, the object in
-- the global `obj`, the script's return value taken as the health. Argo CD's VM (gopher-lua)
-- loads only the base, table and os libraries, so the environment here has no string, math, io
-- or debug library, and strings lose their methods ("x"):len() while the script runs: a script
-- that passes here does not depend on anything Argo CD leaves out.
-- The last line printed is "N passed, M failed"; the exit status is non-zero on any failure.

local script_path, snippet_path = arg[1], arg[2]
if script_path == nil or snippet_path == nil or arg[3] == nil then
  io.stderr:write("usage: lua5.4 run.lua HEALTH.lua SNIPPET.yaml CASE.json...\n")
  os.exit(2)
end

local function read_file(path)
  local f, err = io.open(path, "rb")
  if f == nil then
    error(err, 0)
  end
  local text = f:read("a")
  f:close()
  return text
end

-- A small, strict JSON decoder: objects become tables with string keys, arrays 1-based tables,
-- integral numbers Lua integers (so tostring(3) is "3", as in gopher-lua), null nil.
local function decode_json(text)
  local pos = 1

  local function fail(what)
    error(string.format("JSON: %s at byte %d", what, pos), 0)
  end

  local function skip_space()
    pos = text:find("[^ \t\r\n]", pos) or (#text + 1)
  end

  local value

  local function parse_string()
    pos = pos + 1 -- opening quote
    local parts = {}
    while true do
      local c = text:sub(pos, pos)
      if c == "" then
        fail("unterminated string")
      elseif c == '"' then
        pos = pos + 1
        return table.concat(parts)
      elseif c == "\\" then
        local e = text:sub(pos + 1, pos + 1)
        local simple = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n",
          r = "\r", t = "\t" }
        if simple[e] then
          parts[#parts + 1] = simple[e]
          pos = pos + 2
        elseif e == "u" then
          local hex = text:sub(pos + 2, pos + 5)
          if not hex:match("^%x%x%x%x$") then
            fail("bad \\u escape")
          end
          local code = tonumber(hex, 16)
          pos = pos + 6
          if code >= 0xD800 and code <= 0xDBFF and text:sub(pos, pos + 1) == "\\u" then
            local low = tonumber(text:sub(pos + 2, pos + 5), 16)
            if low and low >= 0xDC00 and low <= 0xDFFF then
              code = 0x10000 + (code - 0xD800) * 0x400 + (low - 0xDC00)
              pos = pos + 6
            end
          end
          parts[#parts + 1] = utf8.char(code)
        else
          fail("bad escape")
        end
      elseif c:byte() < 0x20 then
        fail("control character in string")
      else
        local stop = text:find('["\\%c]', pos) or (#text + 1)
        parts[#parts + 1] = text:sub(pos, stop - 1)
        pos = stop
      end
    end
  end

  local function parse_number()
    local s = text:match("^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
    if s == nil or s == "" or s == "-" then
      fail("bad number")
    end
    pos = pos + #s
    local n = tonumber(s)
    if n == nil then
      fail("bad number")
    end
    return math.tointeger(n) or n
  end

  function value()
    skip_space()
    local c = text:sub(pos, pos)
    if c == "{" then
      pos = pos + 1
      local t = {}
      skip_space()
      if text:sub(pos, pos) == "}" then
        pos = pos + 1
        return t
      end
      while true do
        skip_space()
        if text:sub(pos, pos) ~= '"' then
          fail("expected a key")
        end
        local k = parse_string()
        skip_space()
        if text:sub(pos, pos) ~= ":" then
          fail("expected ':'")
        end
        pos = pos + 1
        t[k] = value()
        skip_space()
        local d = text:sub(pos, pos)
        pos = pos + 1
        if d == "}" then
          return t
        elseif d ~= "," then
          fail("expected ',' or '}'")
        end
      end
    elseif c == "[" then
      pos = pos + 1
      local t = {}
      skip_space()
      if text:sub(pos, pos) == "]" then
        pos = pos + 1
        return t
      end
      while true do
        t[#t + 1] = value()
        skip_space()
        local d = text:sub(pos, pos)
        pos = pos + 1
        if d == "]" then
          return t
        elseif d ~= "," then
          fail("expected ',' or ']'")
        end
      end
    elseif c == '"' then
      return parse_string()
    elseif text:sub(pos, pos + 3) == "true" then
      pos = pos + 4
      return true
    elseif text:sub(pos, pos + 4) == "false" then
      pos = pos + 5
      return false
    elseif text:sub(pos, pos + 3) == "null" then
      pos = pos + 4
      return nil
    else
      return parse_number()
    end
  end

  local result = value()
  skip_space()
  if pos <= #text then
    fail("trailing data")
  end
  return result
end

-- The globals Argo CD's VM offers: gopher-lua's base library (Lua 5.1 names, so `unpack`),
-- table, and a safe subset of os.
local function argocd_env(object)
  local env = {
    obj = object,
    assert = assert, error = error, getmetatable = getmetatable, ipairs = ipairs, next = next,
    pairs = pairs, pcall = pcall, print = print, rawequal = rawequal, rawget = rawget,
    rawset = rawset, select = select, setmetatable = setmetatable, tonumber = tonumber,
    tostring = tostring, type = type, unpack = table.unpack, xpcall = xpcall,
    table = { concat = table.concat, insert = table.insert, remove = table.remove,
      sort = table.sort },
    os = { clock = os.clock, date = os.date, difftime = os.difftime, time = os.time },
  }
  env._G = env
  return env
end

local function run_health(source, object)
  local env = argocd_env(object)
  local chunk, err = load(source, "@argocd-health.lua", "t", env)
  if chunk == nil then
    return nil, "does not compile: " .. err
  end
  local string_meta = getmetatable("")
  local string_index = string_meta.__index
  string_meta.__index = nil
  local ok, result = pcall(chunk)
  string_meta.__index = string_index
  if not ok then
    return nil, "script error: " .. tostring(result)
  end
  return result
end

local HEALTH_CODES = { Healthy = true, Progressing = true, Degraded = true, Suspended = true,
  Missing = true, Unknown = true }

local passed, failed = 0, 0

local function report(ok, name, detail)
  if ok then
    passed = passed + 1
    print("ok   " .. name)
  else
    failed = failed + 1
    print("FAIL " .. name .. ": " .. detail)
  end
end

local source = read_file(script_path)

-- 1. The argocd-cm snippet embeds exactly this script: the block scalar under the key, with its
--    indentation removed, equals the file byte for byte.
do
  local key = "resource.customizations.health.esinference.io_InferenceEndpoint:"
  local lines = {}
  for line in (read_file(snippet_path) .. "\n"):gmatch("(.-)\r?\n") do
    lines[#lines + 1] = line
  end
  local start
  for i, line in ipairs(lines) do
    local k, indicator = line:match("^%s+(%S+)%s+(%S+)%s*$")
    if k == key then
      if indicator ~= "|" then
        report(false, "argocd-cm snippet embeds the health script",
          "the key must hold a literal block scalar ('|'), found " .. indicator)
      end
      start = i + 1
      break
    end
  end
  if start == nil then
    report(false, "argocd-cm snippet embeds the health script", "key " .. key .. " not found")
  else
    local indent = lines[start]:match("^(%s+)")
    local body = {}
    for i = start, #lines do
      local line = lines[i]
      if line:match("^%s*$") then
        body[#body + 1] = ""
      elseif line:sub(1, #indent) == indent then
        body[#body + 1] = line:sub(#indent + 1)
      else
        break
      end
    end
    while #body > 0 and body[#body] == "" do
      body[#body] = nil
    end
    local embedded = table.concat(body, "\n") .. "\n" -- '|' keeps one final newline
    local same = embedded == source
    local detail = ""
    if not same then
      local a, b = {}, {}
      for l in embedded:gmatch("([^\n]*)\n") do a[#a + 1] = l end
      for l in source:gmatch("([^\n]*)\n") do b[#b + 1] = l end
      for i = 1, math.max(#a, #b) do
        if a[i] ~= b[i] then
          detail = string.format("first difference at script line %d: snippet %q, file %q", i,
            tostring(a[i]), tostring(b[i]))
          break
        end
      end
      detail = detail .. " (regenerate with: bash .ci/gitops.sh --write)"
    end
    report(same, "argocd-cm snippet embeds the health script", detail)
  end
end

-- 2. Every case: the health Argo CD would show.
for i = 3, #arg do
  local path = arg[i]
  local name = path:match("([^/]+)%.json$") or path
  local ok, case = pcall(decode_json, read_file(path))
  if not ok then
    report(false, name, tostring(case))
  elseif type(case.object) ~= "table" or type(case.argocd) ~= "table" then
    report(false, name, "case needs 'object' and 'argocd'")
  else
    local hs, err = run_health(source, case.object)
    local want = case.argocd
    if hs == nil then
      report(false, name, err)
    elseif type(hs) ~= "table" then
      report(false, name, "script returned a " .. type(hs) .. ", Argo CD needs a table")
    elseif not HEALTH_CODES[hs.status] then
      report(false, name, "status " .. tostring(hs.status) .. " is not an Argo CD health code")
    elseif type(hs.message) ~= "string" then
      report(false, name, "message is a " .. type(hs.message) .. ", not a string")
    elseif hs.status ~= want.status or hs.message ~= want.message then
      report(false, name, string.format("want %s %q, got %s %q", want.status, want.message,
        hs.status, hs.message))
    else
      report(true, name .. " -> " .. hs.status)
    end
  end
end

print(string.format("%d passed, %d failed", passed, failed))
os.exit(failed == 0 and 0 or 1)
