-- small-files: each request asks for a random one of /small/0.bin .. /small/999.bin.
-- Fixed seed: every server gets the same sequence. Requests are formatted once, in init().
local reqs = {}

function init(args)
  math.randomseed(20261124)
  for i = 0, 999 do
    reqs[#reqs + 1] = wrk.format("GET", "/small/" .. i .. ".bin")
  end
end

function request()
  return reqs[math.random(#reqs)]
end
