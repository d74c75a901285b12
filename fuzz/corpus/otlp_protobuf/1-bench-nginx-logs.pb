
–
Î

service.name
nginx

service.namespace
shop

service.version
1.4.2
+
deployment.environment.name

production

k8s.namespace.name
shop
$
k8s.pod.name
nginx-7d9f8c-00003

k8s.node.name
node-3
!
	host.name
nginx-7d9f8c-00003

telemetry.sdk.language
go
%
telemetry.sdk.name
opentelemetry
!
telemetry.sdk.version
1.28.0ﬂ
	
filelogæ	y˚€∫J¶	INFO*t
r12.0.14.26 - - [01/Jan/2024:00:03:42 +0000] "GET /images/473.jpg HTTP/1.1" 200 1481 "-" "kube-probe/1.29" rt=0.0612,
log.file.path
/var/log/nginx/access.logY˘Î÷ΩJ¶”	4Pm!e¶	INFO*à
Ö116.0.230.98 - - [01/Jan/2024:01:18:53 +0000] "GET / HTTP/1.1" 200 866 "-" "Googlebot/2.1 (+http://www.google.com/bot.html)" rt=0.0042,
log.file.path
/var/log/nginx/access.logY¥@h$e¶∫	* ∫”é¶	INFO*p
n140.3.246.18 - - [01/Jan/2024:01:21:52 +0000] "PUT /healthz HTTP/1.1" 200 27169 "-" "kube-probe/1.29" rt=0.0032,
log.file.path
/var/log/nginx/access.logY™µ÷é¶
Î
Î

service.name
nginx

service.namespace
shop

service.version
1.4.2
+
deployment.environment.name

production

k8s.namespace.name
shop
$
k8s.pod.name
nginx-7d9f8c-00002

k8s.node.name
node-2
!
	host.name
nginx-7d9f8c-00002

telemetry.sdk.language
go
%
telemetry.sdk.name
opentelemetry
!
telemetry.sdk.version
1.28.0˙
	
filelog‡	a–ÄÂ¶	INFO*ï
í20.3.174.250 - - [01/Jan/2024:00:14:46 +0000] "DELETE /search?q=red+dress HTTP/1.1" 200 489 "https://shop.example.com/" "kube-probe/1.29" rt=0.0532,
log.file.path
/var/log/nginx/access.logY·¿ÉÂ¶§	ﬁXL¿/¶	INFO*Ÿ
÷53.2.29.127 - - [01/Jan/2024:00:20:05 +0000] "PUT /api/v1/products/712 HTTP/1.1" 200 5925 "-" "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148" rt=0.0142,
log.file.path
/var/log/nginx/access.logY^IG√/¶∏	∆W”[z¶	INFO*Ì
Í58.39.152.136 - - [01/Jan/2024:00:25:26 +0000] "GET /checkout HTTP/1.1" 200 2644 "https://shop.example.com/" "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15" rt=0.0162,
log.file.path
/var/log/nginx/access.logYFHŒ^z¶ß	mh”œ&¶WARN*‹
Ÿ62.1.228.204 - - [01/Jan/2024:01:32:45 +0000] "PUT /static/css/site.css HTTP/1.1" 404 1153 "-" "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36" rt=0.0042,
log.file.path
/var/log/nginx/access.logYÌXŒ“&¶
ê
Î

service.name
nginx

service.namespace
shop

service.version
1.4.2
+
deployment.environment.name

production

k8s.namespace.name
shop
$
k8s.pod.name
nginx-7d9f8c-00000

k8s.node.name
node-0
!
	host.name
nginx-7d9f8c-00000

telemetry.sdk.language
go
%
telemetry.sdk.name
opentelemetry
!
telemetry.sdk.version
1.28.0ü
	
filelogë	..ô4ú¶WARN*∆
√197.0.29.127 - - [01/Jan/2024:00:46:11 +0000] "GET / HTTP/1.1" 404 672 "-" "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148" rt=0.0152,
log.file.path
/var/log/nginx/access.logYÆî7ú¶