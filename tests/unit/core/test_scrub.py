"""Tests for :mod:`airflow_faultcat.core.scrub`: formats, look-alikes, known secrets, speed."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections import namedtuple
from pathlib import Path

import pytest

from airflow_faultcat.core import scrub as scrub_module
from airflow_faultcat.core.scrub import (
    MIN_KNOWN_SECRET_LENGTH,
    RULES,
    Redaction,
    Scrubber,
    is_sensitive_key,
    scrub,
)

DATA = Path(__file__).resolve().parents[2] / "data" / "scrub"
REPO_ROOT = Path(__file__).resolve().parents[3]

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ."
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
PEM_BODY = (
    "MIIEpAIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM9OiFAKEFAKEFAKEFAKEFAKEFAKEFAKE\n"
    "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789+/AbCdEfGhIjKlMnOpQrStUvWxYz01\n"
    "ZmFrZWZha2VmYWtlZmFrZWZha2VmYWtlZmFrZWZha2VmYWtlZmFrZWZha2VmYWtlZg==\n"
)
PEM = f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}-----END RSA PRIVATE KEY-----"


def _data_lines(name: str) -> list[str]:
    """Return the non-comment, non-blank lines of a data file."""
    lines = (DATA / name).read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]


def _secret_cases() -> list[tuple[str, list[str]]]:
    cases = []
    for raw in _data_lines("secrets.txt"):
        line, *secrets = raw.split("\t")
        cases.append((line, secrets))
    return cases


@pytest.fixture(scope="module")
def scrubber() -> Scrubber:
    return Scrubber()


# ---- one case per format -------------------------------------------------------------------

FORMAT_CASES = [
    # (rule id, input, expected output)
    ("aws_access_key", "key id AKIAIOSFODNN7EXAMPLE in use", "key id *** in use"),
    ("aws_access_key", "sts creds ASIAY34FZKBOKMUTVV7A expired", "sts creds *** expired"),
    (
        "key_value",
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "aws_secret_access_key = ***",
    ),
    (
        "aws_secret_key",
        "boto3.client('s3', region='eu-west-1', aws_key=\"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\")",
        "boto3.client('s3', region='eu-west-1', aws_key=\"***\")",
    ),
    (
        "aws_secret_key",
        "airflow-ci,AKIAJ7Q3EXAMPLE2ZZQA,Zm9vYmFyYmF6cXV4K1FVVVgvWFlaMTIzNDU2Nzg5",
        "airflow-ci,***,***",
    ),
    (
        "github_token",
        "git push with ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789 failed",
        "git push with *** failed",
    ),
    (
        "github_token",
        "GH=github_pat_11ABCDEFG0aBcDeFgHiJkL_mNoPqRsTuVwXyZ0123456789aBcDeFg",
        "GH=***",
    ),
    ("gitlab_token", "private token glpat-xYzAbC1234567890dEfG rejected", "private token *** rejected"),
    (
        "slack_token",
        "slack token xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx invalid",
        "slack token *** invalid",
    ),
    (
        "slack_webhook",
        "POST https://hooks.slack.com/services/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 -> 404",
        "POST https://hooks.slack.com/services/*** -> 404",
    ),
    ("stripe_key", "stripe key sk_live_4eC39HqLyjWDarjtT1zdp7dc denied", "stripe key *** denied"),
    ("stripe_key", "using sk_test_4eC39HqLyjWDarjtT1zdp7dcAbCd", "using ***"),
    (
        "openai_key",
        "Incorrect API key provided: sk-abcdefghij1234567890T3BlbkFJabcdefghij1234567890.",
        "Incorrect API key provided: ***.",
    ),
    (
        "openai_key",
        "client created with sk-proj-Ab12Cd34Ef56Gh78Ij90Kl12Mn34Op56Qr78 ok",
        "client created with *** ok",
    ),
    (
        "sendgrid_key",
        "sendgrid SG.aBcDeFgHiJkLmNoPqRsTuV.wXyZ0123456789aBcDeFgHiJkLmNoPqRsTuVwXyZ012 bad",
        "sendgrid *** bad",
    ),
    ("google_api_key", "maps AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe quota", "maps *** quota"),
    ("jwt", f"got session {JWT} from idp", "got session *** from idp"),
    ("jwt", f"Authorization: Bearer {JWT}", "Authorization: Bearer ***"),
    ("authorization_header", "Authorization: Bearer 1a2b3c4d5e6f7a8b9c0d", "Authorization: Bearer ***"),
    (
        "authorization_header",
        "curl -H 'Authorization: Basic YWlyZmxvdzpTdXAzclMzY3JldCE=' http://api:8080/health",
        "curl -H 'Authorization: Basic ***' http://api:8080/health",
    ),
    (
        "github_token",  # the same span as authorization_header; the more specific rule names it
        '-H "Authorization: token ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"',
        '-H "Authorization: token ***"',
    ),
    ("bearer_token", "retrying with Bearer Zk9vQmFyMTIzNDU2Nzg5MGFiY2RlZg", "retrying with Bearer ***"),
    ("basic_auth", "sent Basic YWRtaW46QWRtMW4tRjRrZS1Qdw== to proxy", "sent Basic *** to proxy"),
    (
        "vault_token",
        "VAULT_TOKEN=hvs.CAESIJlU9JMYEhOPYv4KMBbYqVj9aUqg1yHkJQ4eVwfC vault kv get",
        "VAULT_TOKEN=*** vault kv get",
    ),
    ("vault_token", "vault login s.Qf1s5zigZ4LX6vTpdD6OfCqk", "vault login ***"),
    (
        "vault_token",
        "vault batch token hvb.AAAAAQJgxDgqsGNorpoOR7hPZ5SU-ynBvCl7 used",
        "vault batch token *** used",
    ),
    (
        "url_password",
        "postgresql://user:s3cr3tPass@host:5432/db",
        "postgresql://user:***@host:5432/db",
    ),
    (
        "url_password",
        "AIRFLOW_CONN_X='mysql://etl:My5ql!pw@mysql:3306/etl'",
        "AIRFLOW_CONN_X='mysql://etl:***@mysql:3306/etl'",
    ),
    ("url_password", "redis://:p@ss@redis:6379/0", "redis://:***@redis:6379/0"),
    (
        "azure_connection_string",
        "DefaultEndpointsProtocol=https;AccountName=etl;AccountKey=Zm9vYmFyMTIzNDU2Nzg5MA==;EndpointSuffix=core.windows.net",
        "DefaultEndpointsProtocol=https;AccountName=etl;AccountKey=***;EndpointSuffix=core.windows.net",
    ),
    (
        "azure_connection_string",
        "BlobEndpoint=https://etl.blob.core.windows.net/;SharedAccessSignature=sv=2022-11-02&sig=abcDEF123%3D",
        "BlobEndpoint=https://etl.blob.core.windows.net/;SharedAccessSignature=***",
    ),
    (
        "azure_sas_signature",
        "GET https://etl.blob.core.windows.net/raw/a.csv?sv=2022-11-02&sp=r&sig=N3wF4kES1gNa%2BTuR3%3D&se=2026",
        "GET https://etl.blob.core.windows.net/raw/a.csv?sv=2022-11-02&sp=r&sig=***&se=2026",
    ),
    (
        "key_value",
        '{"type": "service_account", "private_key_id": "1f2e3d4c5b6a79881f2e3d4c5b6a79881f2e3d4c"}',
        '{"type": "service_account", "private_key_id": "***"}',
    ),
    ("key_value", "password=hunter22 user=bob", "password=*** user=bob"),
    ("key_value", "  secret: N0tARealS3cretValue", "  secret: ***"),
    ("key_value", '{"api_key": "abc123def456", "region": "eu"}', '{"api_key": "***", "region": "eu"}'),
    ("key_value", "GET /v1/items?token=Tk9-fake-0001&page=2", "GET /v1/items?token=***&page=2"),
    ("key_value", "export DB_PASSWORD='pa ss w0rd'", "export DB_PASSWORD='***'"),
    (
        "key_value",
        "AIRFLOW__CORE__FERNET_KEY=81HqDtbqAywKSOumSha3BhWNOdQ26slT6K0YaZeZyPs=",
        "AIRFLOW__CORE__FERNET_KEY=***",
    ),
    ("key_value", "X-Api-Key: 3f8a9c2e7b1d4e5f", "X-Api-Key: ***"),
    ("key_value", "--password=Adm1nF4ke", "--password=***"),
    (
        "cli_flag",
        "airflow users create --username admin --password Adm1nF4ke --role Admin",
        "airflow users create --username admin --password *** --role Admin",
    ),
    ("cli_flag", "curl -u etl_bot:Curl-F4ke-Pw9 https://ci/job", "curl -u etl_bot:*** https://ci/job"),
    # ---- quoted pairs, call arguments, Terraform, Windows ----
    ("key_value", 'docker run -e "DB_PASSWORD=two words" img', 'docker run -e "DB_PASSWORD=***" img'),
    ("key_value", 'conf.set("fs.s3a.secret.key", "S3a-Fake-20")', 'conf.set("fs.s3a.secret.key", "***")'),
    (
        "key_value",
        '{"db_password": {"value": "Tf-Fake-21", "sensitive": true}}',
        '{"db_password": {"value": "***", "sensitive": true}}',
    ),
    ("key_value", "REDISCLI_AUTH=Redis-Fake-22 redis-cli ping", "REDISCLI_AUTH=*** redis-cli ping"),
    ("cli_flag", "cmdkey /add:srv /user:etl /pass:Win-Fake-23", "cmdkey /add:srv /user:etl /pass:***"),
    ("url_password", "dsn etl:Go-Fake-24@tcp(db:3306)/etl", "dsn etl:***@tcp(db:3306)/etl"),
    ("url_password", "amqp://guest:p<a>ss@rabbit:5672/", "amqp://guest:***@rabbit:5672/"),
    # ---- context forms: commands, cookies, SQL, config files, markup ----
    ("cli_flag", "mysql -h db -u etl -pS3cret-Fake-1 etl", "mysql -h db -u etl -p*** etl"),
    ("cli_flag", "sshpass -p 'Fake pw 2' ssh etl@db", "sshpass -p '***' ssh etl@db"),
    ("cli_flag", "redis-cli -h 127.0.0.1 -a R3dis-Fake ping", "redis-cli -h 127.0.0.1 -a *** ping"),
    (
        "cli_flag",
        "docker login -u ci -p Dock3r-Fake reg.example.com",
        "docker login -u ci -p *** reg.example.com",
    ),
    ("cli_flag", "sqlcmd -S db -U sa -PSql-Fake-3", "sqlcmd -S db -U sa -P***"),
    (
        "cli_flag",
        "htpasswd -b /etc/nginx/.htpasswd admin Htp-Fake-4",
        "htpasswd -b /etc/nginx/.htpasswd admin ***",
    ),
    (
        "cli_flag",
        "openssl pkcs12 -export -in c.pem -passout pass:Ossl-Fake-5",
        "openssl pkcs12 -export -in c.pem -passout pass:***",
    ),
    ("cli_flag", "rabbitmqctl add_user etl Rmq-Fake-6", "rabbitmqctl add_user etl ***"),
    (
        "cli_flag",
        "kubectl create secret generic db --from-literal=password=K8s-Fake-7",
        "kubectl create secret generic db --from-literal=password=***",
    ),
    (
        "cli_flag",
        "curl -u sk0123456789AbCdEfGhIj: https://api.example.com",
        "curl -u ***: https://api.example.com",
    ),
    ("cookie", "Cookie: sessionid=a1b2c3d4e5f6g7h8; lang=en", "Cookie: sessionid=***; lang=en"),
    ("cookie", "Set-Cookie: sid=9f8e7d6c5b4a; Path=/; HttpOnly", "Set-Cookie: sid=***; Path=/; HttpOnly"),
    ("markup", "<password>Xml-Fake-8</password>", "<password>***</password>"),
    ("markup", '<input type="password" value="Html-Fake-9">', '<input type="password" value="***">'),
    ("sql_password", "CREATE USER etl IDENTIFIED BY 'Sql-Fake-9';", "CREATE USER etl IDENTIFIED BY '***';"),
    (
        "sql_password",
        "ALTER ROLE etl WITH ENCRYPTED PASSWORD 'Role-Fake-10'",
        "ALTER ROLE etl WITH ENCRYPTED PASSWORD '***'",
    ),
    (
        "netrc",
        "machine api.example.com login etl password Netrc-Fake-11",
        "machine api.example.com login etl password ***",
    ),
    ("pgpass", "db.internal:5432:warehouse:etl:Pgpass-Fake-12", "db.internal:5432:warehouse:etl:***"),
    (
        "key_value",
        '    - name: WAREHOUSE_PASSWORD\n      value: "Env-Fake-31"',
        '    - name: WAREHOUSE_PASSWORD\n      value: "***"',
    ),
    (
        "key_value",
        '[{"name": "API_TOKEN", "value": "Ecs-Fake-32x"}, {"name": "MODE", "value": "batch"}]',
        '[{"name": "API_TOKEN", "value": "***"}, {"name": "MODE", "value": "batch"}]',
    ),
    (
        "key_value",
        'set_sensitive {\n  name  = "auth.adminPassword"\n  value = "Helm-Fake-33"\n}',
        'set_sensitive {\n  name  = "auth.adminPassword"\n  value = "***"\n}',
    ),
    (
        "key_value",
        '"SESSIONID": {\n  "path": "/",\n  "value": "9F8E7D6C5B4A39281706F5E4D3C2B1A0"\n}',
        '"SESSIONID": {\n  "path": "/",\n  "value": "***"\n}',
    ),
    (
        "key_value",
        "Setup done. Your one-time admin password is below:\n\n  Zq81mKx0Lp29vNw7\n",
        "Setup done. Your one-time admin password is below:\n\n  ***\n",
    ),
    (
        "key_value",
        'ScramLoginModule required\n  user_etl="Jaas-Fake-34";',
        'ScramLoginModule required\n  user_etl="***";',
    ),
    ("key_value", "Recovery Key 2: Rk5fAke0Recovery0Key0Value0b64==", "Recovery Key 2: ***"),
    (
        "key_value",
        "PDOException in Connector->connect('pgsql:host=db;dbname=app', 'app', 'Pdo-Fake-35')",
        "PDOException in Connector->connect('pgsql:host=db;dbname=app', 'app', '***')",
    ),
    (
        "key_value",
        "rotate the token `0c9d5e1a-77f3-4b2e-9a41-6e0f3d2c1b8a` today",
        "rotate the token `***` today",
    ),
    ("key_value", "SECRET_KEY=k3y(with)parens%+and=signs", "SECRET_KEY=***"),
    ("key_value", "AWS_SECRET_ACCESS_KEY: 'Zk8+Trunc4tedSecretValue......'", "AWS_SECRET_ACCESS_KEY: '***'"),
    (
        "cli_flag",
        "curl -sSL -vu svc:Curl-Fake-36 https://api.local",
        "curl -sSL -vu svc:*** https://api.local",
    ),
    (
        "cli_flag",
        "java -jar tool.jar -h db -uetl -pJdbc-Fake-37 -d app",
        "java -jar tool.jar -h db -uetl -p*** -d app",
    ),
    ("cli_flag", "htpasswd -nbBC 12 etl 'Bcrypt-Fake-38'", "htpasswd -nbBC 12 etl '***'"),
    ("query_param", "curl -d 'key=Form0Fake0Key39' https://api.local", "curl -d 'key=***' https://api.local"),
    ("url_userinfo", "https://a1b2c3d4e5f6a7b8c9d0@pypi.internal/simple", "https://***@pypi.internal/simple"),
    ("url_userinfo", "redis://p@ssw0rd@cache:6379/0", "redis://***@cache:6379/0"),
    (
        "webhook_url",
        "https://hooks.example.com/incomingWebhooks/1a2b3c4d5e6f/Wh00kFakeSecretPath40",
        "https://hooks.example.com/incomingWebhooks/1a2b3c4d5e6f/***",
    ),
    (
        "cli_flag",
        'sqlplus.exe -L etl/"Ora@Fake-41"@WAREHOUSE @load.sql',
        'sqlplus.exe -L etl/"***"@WAREHOUSE @load.sql',
    ),
    ("cli_flag", "sqlplus -S etl/Ora@Fake42@WAREHOUSE", "sqlplus -S etl/***@WAREHOUSE"),
    ("cli_flag", "SQL> CONNECT etl/OraFake43x@db:1521/app", "SQL> CONNECT etl/***@db:1521/app"),
    (
        "cli_flag",
        "dsn=etl/OraFake44x@(DESCRIPTION=(ADDRESS=(HOST=db)))",
        "dsn=etl/***@(DESCRIPTION=(ADDRESS=(HOST=db)))",
    ),
    (
        "cli_flag",
        "mc alias set lake http://minio:9000 etl Mc0Fake-Secret-45",
        "mc alias set lake http://minio:9000 etl ***",
    ),
    (
        "cli_flag",
        "nuget push etl.1.0.0.nupkg nugetfakekey46abcdef -Source x",
        "nuget push etl.1.0.0.nupkg *** -Source x",
    ),
    (
        "cli_flag",
        'net use Q: "\\\\nas\\Team Share" /user:etl Net0Fake47 /persistent:no',
        'net use Q: "\\\\nas\\Team Share" /user:etl *** /persistent:no',
    ),
    ("key_value", "SECRET_KEY_BASE=0f1e2d3c4b5a69788796a5b4c3d2e1f0", "SECRET_KEY_BASE=***"),
    ("key_value", "[12]\tdb_admin_password          Tbl0Fake48", "[12]\tdb_admin_password          ***"),
    (
        "key_value",
        "changed: [web] => (item={u'user': u'etl', u'password': u'Py2Fake49'})",
        "changed: [web] => (item={u'user': u'etl', u'password': u'***'})",
    ),
    (
        "key_value",
        "CREATE LOGIN etl WITH PASSWORD = N'Nvar0Fake50'",
        "CREATE LOGIN etl WITH PASSWORD = N'***'",
    ),
    ("key_value", "  VTAPI_KEY: 'f00dfeed0123456789abcdef0123456789abcdef'", "  VTAPI_KEY: '***'"),
    ("vault_token", "vhsm login s.Fak3Fak3Fak3Fak3Fak3Fak3", "vhsm login ***"),
    (
        "cli_flag",
        "ansible-vault encrypt_string 'Vault0Fake51' --name 'db_pass'",
        "ansible-vault encrypt_string '***' --name 'db_pass'",
    ),
    (
        "key_value",
        "[INF] Refresh token issued for client etl: 0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c",
        "[INF] Refresh token issued for client etl: ***",
    ),
    (
        "url_password",
        "Error 2 connecting etl:Redis0Fake52@cache:6379.",
        "Error 2 connecting etl:***@cache:6379.",
    ),
    (
        "key_value",
        "A temporary password is provided for this session: Tmp0Fake53x",
        "A temporary password is provided for this session: ***",
    ),
    ("cli_flag", "schtasks /S db01 /U etl /P Sch0Fake54 /TN load", "schtasks /S db01 /U etl /P *** /TN load"),
    ("cli_flag", "psexec \\\\db01 -u etl -p Psx0Fake55 cmd", "psexec \\\\db01 -u etl -p *** cmd"),
    ("cli_flag", 'echo "Vnc0Fake56" | vncpasswd -f > passwd', 'echo "***" | vncpasswd -f > passwd'),
    ("cli_flag", "vncviewer /user etl /password Vnc0Fake57 host", "vncviewer /user etl /password *** host"),
    (
        "cli_flag",
        "composer config -g github-oauth.github.com composerfake0token58abc",
        "composer config -g github-oauth.github.com ***",
    ),
    (
        "cli_flag",
        "choco apikey -k Choco0Fake59 --source https://repo",
        "choco apikey -k *** --source https://repo",
    ),
    (
        "cli_flag",
        "altool --upload-app -u dev@example.com -p abcd-efgh-ijkl-mnop",
        "altool --upload-app -u dev@example.com -p ***",
    ),
    ("key_value", "PASS Ftp0Fake60", "PASS ***"),
    ("key_value", "'password': ['List0Fake61'],", "'password': ['***'],"),
    ("key_value", "Unseal Key: Uns3alFakeKeyValue62", "Unseal Key: ***"),
    ("ceph_key", "key = AQBcephFakeKeyForTestsOnly000000000000==", "key = ***"),
    ("github_token", "\\033[32mghp_FakeFakeFakeFakeFakeFakeFakeFake0000\\033[0m", "\\033[32m***\\033[0m"),
    (
        "docker_auth",
        '{"auths": {"reg.example.com": {"auth": "ZXRsOkRvY2tlci1GYWtlLTEz"}}}',
        '{"auths": {"reg.example.com": {"auth": "***"}}}',
    ),
    ("redis_auth", "127.0.0.1:6379> AUTH Redis-Fake-14", "127.0.0.1:6379> AUTH ***"),
    ("redis_auth", "requirepass Redis-Fake-15", "requirepass ***"),
    ("query_param", "GET /callback?code=4/0AbCdEf123456XyZ&state=abc", "GET /callback?code=***&state=abc"),
    (
        "url_userinfo",
        "sentry: https://0123456789abcdef0123456789abcdef@o12345.ingest.sentry.io/678",
        "sentry: https://***@o12345.ingest.sentry.io/678",
    ),
    (
        "url_password",
        "postgresql://etl:p@ss#w/rd?x@db.internal:5432/warehouse",
        "postgresql://etl:***@db.internal:5432/warehouse",
    ),
    ("url_password", "https%3A%2F%2Fetl%3AUrl-Fake-16%40host%2Fx", "https%3A%2F%2Fetl%3A***%40host%2Fx"),
    (
        "webhook_url",
        "https://discord.com/api/webhooks/123456789012345678/AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
        "https://discord.com/api/webhooks/123456789012345678/***",
    ),
    ("kubeadm_token", "join token is abcde1.0123456789abcdef now", "join token is *** now"),
    (
        "telegram_bot_token",
        "GET https://api.telegram.org/bot123456789:AAbbCCddEEffGGhhIIjjKKllMMnnOOppQQr/getMe",
        "GET https://api.telegram.org/bot***/getMe",
    ),
    ("discord_bot_token", "bot MTIzNDU2Nzg5MDEyMzQ1Njc4.GhIjKl.AbCdEfGhIjKlMnOpQrStUvWxYz0 ok", "bot *** ok"),
    ("twilio_key", "twilio key SK0123456789abcdef0123456789abcdef in use", "twilio key *** in use"),
    ("mailchimp_key", "mailchimp 0123456789abcdef0123456789abcdef-us12 rejected", "mailchimp *** rejected"),
    ("key_value", "password: correct horse battery", "password: ***"),
    ("key_value", "password: |\n  Block-Fake-17\nuser: etl", "password: |\n  ***\nuser: etl"),
    ("key_value", '{\\"password\\": \\"Dbl-Fake-18\\"}', '{\\"password\\": \\"***\\"}'),
    ("key_value", "&quot;password&quot;:&quot;Html-Fake-19&quot;", "&quot;password&quot;:&quot;***&quot;"),
    (
        "query_param",
        "GET /s3/x?X-Amz-Signature=0123abcd&X-Amz-Date=1",
        "GET /s3/x?X-Amz-Signature=***&X-Amz-Date=1",
    ),
    # A key, blanks or "is", then a generated-looking value.
    ("key_value", "bindpw Spc-Fake-20x", "bindpw ***"),
    ("key_value", "the token is Prose9Fake21", "the token is ***"),
    ("key_value", "smtp_pass = Fake-22-pass", "smtp_pass = ***"),
    ("key_value", "credentials: etl:Cred-Fake-23", "credentials: etl:***"),
    # Commands written as a Python list, piped secrets, more tools.
    (
        "cli_flag",
        "Command '['mysql', '-uroot', '-pList-Fake-24', 'db']' returned non-zero exit status 1.",
        "Command '['mysql', '-uroot', '-p***', 'db']' returned non-zero exit status 1.",
    ),
    (
        "key_value",
        "['psql', '-U', 'etl', '--password', 'List-Fake-25']",
        "['psql', '-U', 'etl', '--password', '***']",
    ),
    ("cli_flag", "echo 'Pipe-Fake-26' | sudo -S true", "echo '***' | sudo -S true"),
    ("cli_flag", "echo etl:Pipe-Fake-27 | chpasswd", "echo etl:*** | chpasswd"),
    ("cli_flag", "echo -n Pipe-Fake-28 | base64", "echo -n *** | base64"),
    ("key_value", "skopeo copy --dest-creds etl:Cred-Fake-29 a b", "skopeo copy --dest-creds etl:*** a b"),
    ("cli_flag", "xfreerdp /u:etl /p:Rdp-Fake-30 /v:host", "xfreerdp /u:etl /p:*** /v:host"),
    ("cli_flag", "lftp -u etl,Ftp-Fake-31 host", "lftp -u etl,*** host"),
    ("cli_flag", "smbclient //nas/s -U etl%Smb-Fake-32", "smbclient //nas/s -U etl%***"),
    ("cli_flag", "ssh-keygen -t ed25519 -N 'Key-Fake-33' -f k", "ssh-keygen -t ed25519 -N '***' -f k"),
    ("cli_flag", "openssl enc -aes256 -k Enc-Fake-34 -in f", "openssl enc -aes256 -k *** -in f"),
    (
        "authorization_header",
        'Digest username="etl", response="9f8e7d6c5b4a39281706"',
        'Digest username="etl", response="***"',
    ),
    (
        "authorization_header",
        "Stripe-Signature: t=1492774577,v1=5257a869e7ecebed",
        "Stripe-Signature: t=1492774577,v1=***",
    ),
    ("key_value", "Changed Password from 'Linked-Fake-38' to ''", "Changed Password from '***' to ''"),
    ("key_value", 'NewConn(c, "root", "Adm-Fake-39", h)', 'NewConn(c, "root", "***", h)'),
    ("key_value", 's3secretKeyAws = "Digit-Fake-40"', 's3secretKeyAws = "***"'),
    (
        "aws_secret_key",
        "minio ABCDEFGHIJ0123456789 Ab1/Ab1+Ab1/Ab1+Ab1/Ab1+Ab1/Ab1+Ab1/Ab1+ ok",
        "minio ABCDEFGHIJ0123456789 *** ok",
    ),
    ("key_value", "$ heroku auth:token\nPrinted-Fake-41\n", "$ heroku auth:token\n***\n"),
    # Kubernetes Secret manifests: every value under data (base64) and stringData.
    (
        "key_value",
        "data:\n  conn: RmFrZS1EYXRhLTM1\nkind: Secret",
        "data:\n  conn: ***\nkind: Secret",
    ),
    ("key_value", 'stringData:\n  uri: "Fake-36"\n', 'stringData:\n  uri: "***"\n'),
    (
        "key_value",
        '{"data":{"conn":"RmFrZS1EYXRhLTM3"},"kind":"Secret"}',
        '{"data":{"conn":"***"},"kind":"Secret"}',
    ),
]


@pytest.mark.parametrize(
    ("rule", "line", "expected"), FORMAT_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(FORMAT_CASES)]
)
def test_format(scrubber: Scrubber, rule: str, line: str, expected: str) -> None:
    assert scrubber.scrub(line) == expected
    assert rule in {finding.rule for finding in scrubber.findings(line)}


@pytest.mark.parametrize(
    ("rule", "line", "expected"),
    [c for c in FORMAT_CASES if "\n" not in c[1]],
    ids=[f"{c[0]}-{i}" for i, c in enumerate(FORMAT_CASES) if "\n" not in c[1]],
)
def test_format_on_a_very_long_line(
    scrubber: Scrubber, rule: str, line: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A line past the long-line limit reads long runs by their ends: same result as reading all."""
    padding = "Zz9" * 30_000
    long_line = f"{padding} {line} {padding}"
    shortened = scrubber.scrub(long_line)
    monkeypatch.setattr(scrub_module, "_LONG_LINE", 10**9)
    assert shortened == scrubber.scrub(long_line)
    assert expected.split("***")[0] in shortened


def test_a_huge_value_is_masked_whole_on_a_long_line(scrubber: Scrubber) -> None:
    value = "A1b2" * 1_000_000
    assert scrubber.scrub(f"connecting with password={value} now") == "connecting with password=*** now"


def test_every_rule_id_has_a_format_case() -> None:
    from airflow_faultcat.core.scrub_formats import VENDOR_TOKENS

    covered = {case[0] for case in FORMAT_CASES} | {"known_secret", "private_key"}
    covered |= {rule_id for rule_id, _, _ in VENDOR_TOKENS}  # test_vendor_token_formats
    # Rules that only back up another id (huggingface, databricks...) are covered by secrets.txt.
    optional = {"huggingface_token", "databricks_token", "pypi_token", "square_oauth"}
    assert set(Scrubber.rule_ids()) - optional <= covered


# ---- data files ----------------------------------------------------------------------------


def test_data_files_are_big_enough() -> None:
    assert len(_secret_cases()) >= 60
    assert len(_data_lines("lookalikes.txt")) >= 60


@pytest.mark.parametrize(("line", "secrets"), _secret_cases(), ids=lambda value: None)
def test_secret_line_loses_its_secret(scrubber: Scrubber, line: str, secrets: list[str]) -> None:
    assert secrets, f"data line lists no secret: {line!r}"
    out = scrubber.scrub(line)
    leaked = [secret for secret in secrets if secret in out]
    assert not leaked, f"{leaked} left in {out!r}"
    assert "***" in out
    assert scrubber.findings(line)


def test_secret_lines_keep_their_structure(scrubber: Scrubber) -> None:
    """Only values are masked: most of each line survives, so a reader understands it."""
    kept_total = rest_total = 0
    for line, secrets in _secret_cases():
        out = scrubber.scrub(line)
        kept = len(out.replace("***", ""))
        rest = len(line) - sum(len(s) for s in secrets)
        # An AWS4 Authorization header loses its credential scope too, hence the low floor.
        assert kept >= rest * 0.25, (line, out)
        kept_total += kept
        rest_total += rest
    assert kept_total >= rest_total * 0.9


def test_lookalikes_unchanged(scrubber: Scrubber) -> None:
    lines = _data_lines("lookalikes.txt")
    changed = [(line, scrubber.scrub(line)) for line in lines if scrubber.scrub(line) != line]
    report = "\n".join(f"  {before!r}\n  -> {after!r}" for before, after in changed)
    assert len(changed) <= 0.10 * len(lines), f"{len(changed)}/{len(lines)} look-alikes changed:\n{report}"
    if changed:  # allowed, but make it visible
        print(f"look-alikes changed ({len(changed)}/{len(lines)}):\n{report}")


def test_lookalikes_unchanged_inside_json_string(scrubber: Scrubber) -> None:
    """A log dumped as one JSON string (escaped newlines and quotes) scrubs like the log itself."""
    lookalikes = json.dumps("\n".join(_data_lines("lookalikes.txt")))
    assert scrubber.scrub(lookalikes) == lookalikes
    cases = _secret_cases()
    dumped = json.dumps("\n".join(line for line, _ in cases))
    out = scrubber.scrub(dumped)
    leaked = [s for _, secrets in cases for s in secrets if json.dumps(s)[1:-1] in out]
    assert not leaked


# ---- specific behaviours -------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "password: ***",
        "'password': '***'",
        "postgresql://airflow:***@db/airflow",
        "Authorization: Bearer ***",
        "token_type: bearer",
        'FATAL:  password authentication failed for user "airflow"',
        "password=${DB_PASSWORD}",
        "password: null",
        "PWD=/opt/airflow",
        "next_page_token=CiAKGjBpNDd2Nmp6dGs4aWR3dXZ5bGJwbjNnaGw",
        "Using secret: airflow-connections",
        "docker run -u 50000:0 apache/airflow:3.1.0",
        "docker run -p 8080:80 -e MODE=dev nginx",
        "WARNING! Using --password via the CLI is insecure. Use --password-stdin.",
        "http://localhost:8080/api?email=etl@example.com",
        "password: |",
        "docker login --username=ci --password=${{ secrets.DOCKER_PASSWORD }}",
        '"msg": "Invalid/incorrect password: Permission denied, please try again."',
        "mount -o credentials=/etc/cifs-credentials //nas/share /mnt",
        "'Authorization' => 'Bearer ' . $token,",
        "Conn(password=None)",
        "routing_key=celery",
        "echo ${{ secrets.GH_TOKEN }}",
        'token = "glrt-<TOKEN>"',
        "Cookie: lang=en",
        "signature_version = s3v4",
        '"auth": {"client_token": ""}',
        'define("DB_PASSWORD", "your-password-here");',
        "Server={0}; Password={4};",
        "root_password = (sensitive value)",
        "postgres@db:5432 password: ***",
        "Secret airflow/AirflowWebserverSecretKey1 rotated",
        "token refresh succeeded for account svc-airflow01",
        "key 5f3e2a1b9c8d7e6f not found in cache",
        "data:\n  log_level: INFO\n  mode: production\n  airflow1: airflow1",
        "first_pass = true",
        "docker login -u [secure] -p [secure]",
        "ps -u root,www-data",
        "login: 2024-01-01 10:00:00",
        "the password was 'expired'",
        "mysql connect('root', 'localhost')",
        "$ cat ~/.aws/credentials\n[default]",
        "the default password is not fixed; the login password must be changed",
        "sshpass -pPASSWORD ssh -pPORT user@host",
        "GITHUB_TOKEN: GITHUB_WORKFLOW:ci.yml",
        "Authorization: Bearer <your token here>",
        "sasl.jaas.config=... username=<<redacted>> password=<<redacted>>",
        'conn = connect("user=\'" + DB_USER + "\' password=\'" + DB_PASS + "\'")',
        "The key fingerprint is:\nSHA256:Xq9fT2mB7cL0vK3nR8sW1yZ4aD6eG5hJ",
        "- name: DB_PASSWORD\n  valueFrom:\n    secretKeyRef:\n      name: db\n      key: password",
        "docker run -u 1000:1000 -v /data:/data etl",
        "S3KeySensor poking for key=raw/2025/01/01/_SUCCESS",
        "POST /api/webhooks/github/push-events",
        "git clone ssh://git@github.com/org/repo.git",
        "mongoimport --username [username] --password  [password]--db  [dbName]",
        "Auth via an `Authorization: Splunk <hec_token>` header.",
        "access_key = <REMOVED FOR SECURITY>",
        '"GEM_HOST_API_KEY=%s gem push %s --host %s",',
        "define( 'DB_PASSWORD', '%%DB_PASSWORD%%' );",
        "db_password    = var.db_password",
        "  authorization: enabled",
        "--ks-pass             KeyStore password (see --ks). The following formats are",
        "pass = project.hasProperty('pass') ? project.getProperty('pass') : ''",
        'cmd.Flag("token", "A join token or the path to a file with the token in it").String()',
        "--ingress-tls-secret web-tls",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:etl-db-Ab12Cd",
        "(RequestToken: 8ce94db6-f347-1447-0e88-762666244885, HandlerErrorCode: NotFound)",
        "mc alias set lake http://minio:9000 $(cat access.txt) $(cat secret.txt)",
        "uses: actions/checkout@v4",
        "vault_token: !vault |",
        "docker login -u $3 -p $4",
        "curl -u admin:$env:ADMIN_PASSWORD https://nexus.local",
        'DATABASE_URL: "postgres://app:$$var__DB_PASS@db:5432/app"',
        "    secret: secretName",
        "WITH PASSWORD = N'<password, sysname, Change_Password>'",
        "token_accessor       GEHXIJ4kiBksXn0OYVt6rBJB",
        "token_type           service",
        'ldapsearch -x -D "cn=Directory Manager" -W -b "dc=example,dc=com"',
        "    token: Optional[str] = None",
        "    clientSecret: string;",
        "  client_secret: string | undefined;",
        'error "Invalid Credentials (errCode:49)" on bind',
        "    B -- HTTPS --> C[Credential Manager/PAT]",
        "access token expired at: 2026-01-01T00:00:00Z",
        "Access token endpoint: https://login.example.com/oauth2/v2.0/token",
        "'Authorization': b'AWS4-HMAC-SHA256 Credential=***ACTUAL_KEY***/2022/us/sts/aws4_request'",
        '["vncpasswd", "-f"],',
        'choco apikey --source="$RepositoryUrl" --apikey $NuGetApiKey',
        "SNYK_TOKEN=(redacted) snyk ignore",
        "POST /password HTTP/1.1",
        "ssh -p 2222 user@host:22",
        "image: registry.local:5000/app:1.2@sha256:abcd",
        "Please use the following password: changeme",
    ],
)
def test_not_a_secret(scrubber: Scrubber, line: str) -> None:
    assert scrubber.scrub(line) == line
    assert scrubber.findings(line) == []


def test_multiline_pem_block() -> None:
    text = f"INFO loading key\n{PEM}\nINFO loaded\n"
    scrubber = Scrubber()
    out = scrubber.scrub(text)
    assert out == (
        "INFO loading key\n-----BEGIN RSA PRIVATE KEY----- *** -----END RSA PRIVATE KEY-----\nINFO loaded\n"
    )
    [finding] = scrubber.findings(text)
    assert finding.rule == "private_key"
    assert finding.line == 2
    assert text[finding.start : finding.end] == PEM


@pytest.mark.parametrize(
    "header",
    [
        "PRIVATE KEY",
        "EC PRIVATE KEY",
        "OPENSSH PRIVATE KEY",
        "ENCRYPTED PRIVATE KEY",
        "PGP PRIVATE KEY BLOCK",
    ],
)
def test_pem_kinds(header: str) -> None:
    block = f"-----BEGIN {header}-----\n{PEM_BODY}-----END {header}-----"
    assert scrub(f"x\n{block}\ny") == f"x\n-----BEGIN {header}----- *** -----END {header}-----\ny"


def test_pem_escaped_in_json() -> None:
    line = json.dumps({"key": PEM})
    out = scrub(line)
    assert "MIIEpAIBAAKCAQEA" not in out
    assert "-----BEGIN RSA PRIVATE KEY----- *** -----END RSA PRIVATE KEY-----" in out


def test_pem_truncated() -> None:
    text = (
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nAbCdEfGhIjKlMnOp\n"
        "[log truncated]\nnext"
    )
    assert scrub(text) == "-----BEGIN PRIVATE KEY----- ***\n[log truncated]\nnext"


def test_public_key_and_certificate_are_kept() -> None:
    text = (
        "-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG9w0BAQUFADBa\n"
        "-----END CERTIFICATE-----"
    )
    assert scrub(text) == text


def test_known_secrets() -> None:
    scrubber = Scrubber(["hunter2-known", "hunter2-known-longer", "p@ss w/rd", "", "abc", None])  # type: ignore[list-item]
    assert scrubber.scrub("a hunter2-known-longer b hunter2-known c") == "a *** b *** c"
    # URL-encoded forms (quote and quote_plus)
    assert scrubber.scrub("dsn=x://u:p%40ss%20w%2Frd@h q=p%40ss+w%2Frd") == "dsn=x://u:***@h q=***"
    # short ones are ignored: they would shred the text
    assert scrubber.scrub("abc abcdef") == "abc abcdef"
    assert MIN_KNOWN_SECRET_LENGTH == 4
    findings = scrubber.findings("line one\nsee hunter2-known here")
    assert findings == [Redaction(rule="known_secret", line=2, start=13, end=26)]


def test_known_secret_multiline_and_json_escaped() -> None:
    scrubber = Scrubber([PEM_BODY])
    assert "MIIEpA" not in scrubber.scrub(json.dumps({"k": "x" + PEM_BODY}))


def test_module_level_scrub() -> None:
    assert scrub("password=abc123 and hunter2-known", ["hunter2-known"]) == "password=*** and ***"
    assert scrub("nothing here") == "nothing here"
    assert scrub("") == ""


def test_custom_replacement() -> None:
    scrubber = Scrubber(replacement="[REDACTED]")
    assert scrubber.scrub("password=abc123") == "password=[REDACTED]"
    assert scrubber.scrub("password=[REDACTED]") == "password=[REDACTED]"


def test_scrub_line() -> None:
    assert Scrubber().scrub_line("Authorization: Bearer abc.def.ghi123") == "Authorization: Bearer ***"


def test_findings_do_not_carry_the_secret() -> None:
    text = "ok\npassword=hunter22 and AKIAIOSFODNN7EXAMPLE\n"
    findings = Scrubber().findings(text)
    assert [(f.rule, f.line) for f in findings] == [("key_value", 2), ("aws_access_key", 2)]
    assert [text[f.start : f.end] for f in findings] == ["hunter22", "AKIAIOSFODNN7EXAMPLE"]
    for finding in findings:
        assert "hunter22" not in repr(finding) and "AKIA" not in repr(finding)
    with pytest.raises(AttributeError):
        findings[0].rule = "other"  # type: ignore[misc]


def test_scrub_obj_nested() -> None:
    Point = namedtuple("Point", ["x", "y"])
    obj = {
        "conn": {
            "login": "airflow",
            "password": "hunter2",
            "port": 5432,
            "extra": {"api_key": "abc", "token_type": "bearer", "region": "eu-west-1"},
        },
        "urls": ["postgresql://u:pw1234@db/x", ("redis://:r3dis@r:6379/0", 7)],
        "AKIAIOSFODNN7EXAMPLE": True,
        "pin": Point("token=abc123def", None),
        "count": 3,
        "secret": None,
        "pwd": "/opt/airflow",
        "token": 12345678,
    }
    out = Scrubber().scrub_obj(obj)
    assert out == {
        "conn": {
            "login": "airflow",
            "password": "***",
            "port": 5432,
            "extra": {"api_key": "***", "token_type": "bearer", "region": "eu-west-1"},
        },
        "urls": ["postgresql://u:***@db/x", ("redis://:***@r:6379/0", 7)],
        "***": True,
        "pin": Point("token=***", None),
        "count": 3,
        "secret": None,
        "pwd": "/opt/airflow",
        "token": "***",
    }
    assert isinstance(out["pin"], Point)
    assert obj["conn"]["password"] == "hunter2"  # the input is not modified


def test_scrub_obj_other_values_and_cycles() -> None:
    scrubber = Scrubber()
    marker = object()
    assert scrubber.scrub_obj(marker) is marker
    assert scrubber.scrub_obj(42) == 42
    assert scrubber.scrub_obj(b"password=abc") == b"password=abc"
    cyclic: list[object] = ["password=abc"]
    cyclic.append(cyclic)
    out = scrubber.scrub_obj(cyclic)
    assert out[0] == "password=***"


@pytest.mark.parametrize(
    ("key", "sensitive"),
    [
        ("password", True),
        ("PGPASSWORD", True),
        ("--conn-password", True),
        ("AIRFLOW__CORE__FERNET_KEY", True),
        ("SecretAccessKey", True),
        ("private_key_id", True),
        ("X-Api-Key", True),
        ("client_secret", True),
        ("token", True),
        ("password_file", False),
        ("token_type", False),
        ("max_tokens", False),
        ("next_page_token", False),
        ("s3_key", False),
        ("secret_name", False),
        ("Authorization", False),
        ("ansible_become_pass", True),
        ("bind_pw", True),
        ("ldap_default_authtok", True),
        ("first_pass", False),
        ("bypass", False),
    ],
)
def test_is_sensitive_key(key: str, sensitive: bool) -> None:
    assert is_sensitive_key(key) is sensitive


def test_rules_are_a_registry() -> None:
    ids = {rule.rule_id for rule in RULES}
    assert {"aws_access_key", "url_password", "jwt", "key_value"} <= ids
    assert all(
        rule.triggers and all(t == t.lower() or t.startswith("re:") for t in rule.triggers) for rule in RULES
    )
    assert any(rule.origin.startswith("detect-secrets:") for rule in RULES)


# ---- speed ---------------------------------------------------------------------------------


def _megabyte_of_logs() -> str:
    lookalikes = _data_lines("lookalikes.txt")
    secrets = [line for line, _ in _secret_cases()]
    plain = [
        "[2025-01-01T03:14:15.926+0000] {taskinstance.py:3311} INFO - Executing <Task(PythonOperator): load>",
        "[2025-01-01T03:14:16.001+0000] {logging_mixin.py:190} INFO - Processed 12345 rows from orders",
    ]
    lines: list[str] = []
    size = 0
    index = 0
    while size < 1_000_000:
        pool = secrets if index % 20 == 0 else lookalikes if index % 3 == 0 else plain
        line = pool[index % len(pool)]
        lines.append(line)
        size += len(line) + 1
        index += 1
    return "\n".join(lines)


def _growth(make: object, scrubber: Scrubber | None = None) -> float:
    """How much longer scrubbing 4x the input takes (best of 5 each): 4 when linear, 16 when
    quadratic. Absolute speed is measured by ``bench/scrub.py``, not here: a ratio holds on a busy
    machine where a wall-clock limit does not. The smaller input is grown until it takes 20 ms,
    so that a scheduler's hiccup is small against it."""
    scrubber = scrubber or Scrubber()
    k = 1
    while True:
        small = make(k)  # type: ignore[operator]
        scrubber.scrub(small)  # warm caches
        t_small = min(_timed(scrubber.scrub, small) for _ in range(5))
        if t_small >= 0.02 or k >= 16:
            break
        k *= 2
    big = make(4 * k)  # type: ignore[operator]
    t_big = min(_timed(scrubber.scrub, big) for _ in range(5))
    return t_big / max(t_small, 1e-4)


def test_logs_scrub_in_linear_time() -> None:
    scrubber = Scrubber(["known-secret-value-1", "known-secret-value-2"])
    assert _growth(lambda k: _megabyte_of_logs()[: 250_000 * k], scrubber) < 10


def test_one_long_line_scrubs_in_linear_time() -> None:
    """Minified JSON: one huge line where every rule's trigger occurs."""
    text = json.dumps({"log": _megabyte_of_logs().splitlines()})
    assert _growth(lambda k: text[: 250_000 * k]) < 10


@pytest.mark.parametrize(
    "hostile",
    [
        "key=" * 25_000,
        "password: " * 12_500,
        'token:"' * 12_500,
        "--password " * 12_500,
        "-----BEGIN RSA PRIVATE KEY-----\n" * 5_000,
        "http://" + "a:" * 25_000,
        "Authorization: " + "a " * 25_000,
        "pass" * 25_000,
        "mysql -pX " * 10_000,
        "Cookie: a=bcdef; " * 10_000,
        "https://a:b" * 10_000,
        "password: |\n" + "  x\n" * 20_000,
        "<password>\n" * 5_000,
        "> AUTH a b " * 10_000,
        "password '" * 10_000,
        "password=" + "A1b2" * 250_000,
        '{"name": "DB_PASSWORD", "value": "' * 5_000,
        '("a", "b"), ' * 10_000,
        "the password:\n" * 10_000,
        "- name: DB_PASSWORD\n" * 10_000,
        'PlainLoginModule required user_a="x" ' * 5_000,
        "/p x " * 10_000,
        "/user a " * 10_000,
        "a:bcde@" * 10_000,
        "the password: " * 10_000,
    ],
    ids=[
        "kv",
        "colon",
        "quote",
        "cli",
        "pem",
        "url",
        "auth",
        "word",
        "mysql",
        "cookie",
        "userinfo",
        "yaml_block",
        "xml_block",
        "redis_auth",
        "sql",
        "long_value",
        "name_value_inline",
        "call_pairs",
        "label",
        "name_value_lines",
        "jaas",
        "slash_p",
        "slash_user",
        "userinfo_no_scheme",
        "password_colon",
    ],  # fmt: skip
)
def test_hostile_lines_stay_linear(hostile: str) -> None:
    assert _growth(lambda k: hostile * k) < 10


def _timed(function: object, *args: object) -> float:
    start = time.perf_counter()
    function(*args)  # type: ignore[operator]
    return time.perf_counter() - start


# ---- purity --------------------------------------------------------------------------------


def test_module_does_not_import_airflow() -> None:
    code = textwrap.dedent(
        """
        import importlib.abc, sys

        class BlockAirflow(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "airflow" or name.startswith("airflow."):
                    raise ImportError(f"airflow is blocked: {name}")
                return None

        sys.meta_path.insert(0, BlockAirflow())
        from airflow_faultcat.core.scrub import Scrubber
        assert Scrubber().scrub("password=abc123") == "password=***"
        leaked = sorted(m for m in sys.modules if m == "airflow" or m.startswith("airflow."))
        assert not leaked, leaked
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


# ---- scrub first, cut afterwards ---------------------------------------------------------------

GH = "ghp_" + "aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"


@pytest.mark.parametrize("keep", ["head", "tail"])
@pytest.mark.parametrize("offset", range(-40, 41, 7))
def test_scrub_cut_never_leaves_a_piece_of_a_token_astride_the_cut(scrubber, keep, offset):
    limit = 200
    if keep == "head":
        text = "w " * ((limit + offset) // 2) + GH + " after"
    else:
        text = "before " + GH + " w" * ((limit + offset) // 2)
    out = scrubber.scrub_cut(text, limit, keep=keep)
    assert len(out) <= limit
    for piece in (GH[i : i + 6] for i in range(0, len(GH) - 6)):
        assert piece not in out


def test_scrub_cut_bounds_the_work_on_one_giant_value(scrubber):
    text = "password=" + "A1b2" * 1_000_000
    started = time.perf_counter()
    assert scrubber.scrub_cut(text, 400) == "password="
    assert scrubber.scrub_cut(text, 400, keep="tail") == ""
    assert time.perf_counter() - started < 5  # a window is scrubbed, not 4 MB
    assert scrubber.scrub_cut("short password=abc123xyz", 400) == "short password=***"
    with pytest.raises(ValueError, match="keep"):
        scrubber.scrub_cut("x", 1, keep="middle")


def test_scrub_obj_replaces_what_is_nested_too_deep(scrubber):
    from airflow_faultcat.core.scrub import MAX_OBJ_DEPTH

    deep: list = []
    inner = deep
    for _ in range(5000):
        inner.append([])
        inner = inner[0]
    out = scrubber.scrub_obj({"a": deep})
    depth = 0
    node = out["a"]
    while isinstance(node, list):
        node = node[0]
        depth += 1
    assert node == "***" and depth == MAX_OBJ_DEPTH - 1


# ---- vendor token formats: any token of the documented shape is masked ------------------------


def _vendor_cases():
    from airflow_faultcat.core.scrub_formats import VENDOR_TOKENS

    return [pytest.param(regex, id=rule_id) for rule_id, _, regex in VENDOR_TOKENS]


@pytest.mark.parametrize("regex", _vendor_cases())
def test_vendor_token_formats(scrubber: Scrubber, regex: str) -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(derandomize=True, max_examples=25, deadline=None, database=None)
    @given(st.from_regex(regex, fullmatch=True))
    def masked(token: str) -> None:
        out = scrubber.scrub(f"request failed with {token} (401)")
        assert token not in out
        assert out.startswith("request failed with ") and out.endswith(" (401)")

    masked()
