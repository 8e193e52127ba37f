from tests.standins.fixtures import github_api, github_conn_id

__all__ = ["github_api", "github_conn_id"]
