#!/bin/bash
# usage: run.sh [profile]  — starts redis on 6391 + p419 API on 8391, wrk 6 s, prints rps and cpu
cd /tmp/prof
rm -rf data; mkdir -p data
(redis-server --port 6391 --save '' --appendonly no >/tmp/prof/redis.log 2>&1 &) 
sleep 0.3
env -i PATH=/usr/bin:/bin HOME=$HOME REDIS_URL=redis://127.0.0.1:6391/0 P419_DATA_DIR=/tmp/prof/data TELEGRAM_BOT_TOKEN=123:abc TELEGRAM_CHAT_ID=1 TELEGRAM_API_URL=http://127.0.0.1:9/ /work/wt/robust/.venv/bin/python -m uvicorn python419.api:app --host 127.0.0.1 --port 8391 > api.log 2>&1 &
API=$!
for i in $(seq 50); do curl -sf localhost:8391/health?workers=false >/dev/null && break; sleep 0.2; done
wrk -t2 -c50 -d1s -s post.lua http://127.0.0.1:8391/products >/dev/null
c0=$(awk '{print $14+$15}' /proc/$API/stat)
if [ "$1" = profile ]; then
  /work/wt/robust/.venv/bin/py-spy record -p $API -o /tmp/prof/prof.txt -f raw --nonblocking -d 6 -r 200 >/dev/null 2>&1 &
  SPY=$!
fi
out=$(wrk -t2 -c50 -d6s --latency -s post.lua http://127.0.0.1:8391/products)
c1=$(awk '{print $14+$15}' /proc/$API/stat)
[ -n "$SPY" ] && wait $SPY
n=$(echo "$out" | grep -o '[0-9]* requests in' | awk '{print $1}')
echo "$out" | grep -E "Requests/sec|99%|Non-2xx|Socket"
python3 -c "print('cpu ms/req', ($c1-$c0)*10/$n)"
kill $API; redis-cli -p 6391 shutdown nosave >/dev/null 2>&1
wait $API 2>/dev/null
