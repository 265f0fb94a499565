-- wrk script: every request posts a new contact (unique channel id); half come from returning
-- customers (a pool of 2,000), half from new ones. Prints a JSON summary at the end.
local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  thread_id = id
  math.randomseed(os.time() + id * 7919)
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. (os.getenv("CC_BENCH_KEY") or "none")
end

local templates = {
  '{"channel":"phone","external_id":"%s","received_at":"2026-11-25T01:02:03Z","customer":{"name":"王芳","phone":"%s"},"text":"我上周买的洗衣机一直漏水，已经打了三次电话了，我要投诉！","language":"zh","phone":{"caller":"%s","called":"+86 400 820 8820","call_id":"%s","direction":"inbound","started_at":"2026-11-25T01:02:03Z","duration_s":412,"ivr_path":["2","1"]}}',
  '{"channel":"email","external_id":"<%s@mail.example.com>","received_at":"2026-11-25T02:10:00Z","customer":{"name":"Maria Lopez","email":"%s@example.com"},"subject":"Refund for order 88231","text":"Hello, I returned the jacket two weeks ago and still have no refund. Order 88231.","language":"en","email":{"message_id":"<%s@mail.example.com>","from":"Maria Lopez <%s@example.com>","to":["support@shop.example"],"references":[]}}',
  '{"channel":"chat","external_id":"%s","received_at":"2026-11-25T03:00:00Z","customer":{"name":"Li Wei","email":"%s@example.cn"},"text":"你好，请问会员积分怎么兑换？","language":"zh","chat":{"session_id":"s-%s","visitor_id":"v-%s","page_url":"https://shop.example/member","messages":[{"from":"visitor","at":"2026-11-25T03:00:00Z","text":"你好，请问会员积分怎么兑换？"}]}}',
  '{"channel":"social","external_id":"%s","received_at":"2026-11-25T06:00:00Z","customer":{"social_handle":"@user_%s"},"text":"@ShopExample your app has been down for an hour, cannot pay at checkout. Fix it!","language":"en","social":{"platform":"x","post_id":"%s","author":"@user_%s","visibility":"public","url":"https://x.example/p/%s"}}',
}

request = function()
  counter = counter + 1
  local ext = string.format("b%d-%d-%d", thread_id, os.time(), counter)
  local who
  if math.random() < 0.5 then
    who = tostring(math.random(1, 2000))
  else
    who = string.format("n%d_%d", thread_id, counter)
  end
  local kind = (counter % 4) + 1
  local body
  if kind == 1 then
    local n = tonumber(who) or (counter + thread_id * 1000000)
    local phone = string.format("+8613%09d", n % 1000000000)
    body = string.format(templates[1], ext, phone, phone, ext)
  elseif kind == 2 then
    body = string.format(templates[2], ext, "u" .. who, ext, "u" .. who)
  elseif kind == 3 then
    body = string.format(templates[3], ext, "u" .. who, ext, who)
  else
    body = string.format(templates[4], ext, who, ext, who, ext)
  end
  return wrk.format("POST", "/v1/contacts", nil, body)
end

function done(summary, latency, requests)
  local non2xx = summary.errors.status
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"non_2xx":%d,"socket_errors":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, non2xx,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
