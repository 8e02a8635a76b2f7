-- range: each request asks for a random, unaligned 64 KiB range of /100m.bin
-- ("Range: bytes=first-last", single range, answered with 206). Fixed seed: every server gets the
-- same sequence of 4,096 ranges, cycled. Requests are formatted once, in init().
local FILE_SIZE = 100 * 1024 * 1024
local LEN = 64 * 1024
local N = 4096
local reqs = {}
local i = 0

function init(args)
  math.randomseed(20261124)
  for k = 1, N do
    local first = math.random(0, FILE_SIZE - LEN)
    local headers = {}
    for name, value in pairs(wrk.headers) do headers[name] = value end
    headers["Range"] = "bytes=" .. first .. "-" .. (first + LEN - 1)
    reqs[k] = wrk.format("GET", "/100m.bin", headers)
  end
end

function request()
  i = i % N + 1
  return reqs[i]
end
