from tests.standins.fixtures import slack_api, slack_conn_id

__all__ = ["slack_api", "slack_conn_id"]
