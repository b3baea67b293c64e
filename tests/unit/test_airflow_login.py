"""The one login to Airflow's REST API, against a stand-in api-server: one login for many calls, a new
token only when Airflow refuses the old one, and a refused login said as such."""

from __future__ import annotations

import threading

import httpx
import pytest

from hms_management.airflow_login import AirflowLogin, ApiError, bearer

TOKEN = "/auth/token"


def get(login: AirflowLogin, url: str) -> httpx.Response:
    return login.authorized(lambda token: httpx.get(f"{url}/api/v2/dags", headers=bearer(token)))


def test_one_login_serves_every_call_until_its_token_is_refused(airflow_api):
    airflow_api.answer("POST", TOKEN, 201, {"access_token": "first"})
    airflow_api.answer("GET", "/api/v2/dags", 200, {"dags": []})
    login = AirflowLogin(airflow_api.url, "agent", "pw")

    assert [get(login, airflow_api.url).status_code for _ in range(3)] == [200, 200, 200]

    [logged_in] = airflow_api.to("POST", TOKEN)
    assert logged_in.body == {"username": "agent", "password": "pw"}
    assert {r.headers["Authorization"] for r in airflow_api.to("GET", "/api/v2/dags")} == {"Bearer first"}


def test_a_call_answered_401_is_sent_once_more_with_a_new_token(airflow_api):
    airflow_api.answer("POST", TOKEN, 201, {"access_token": "expired"})
    airflow_api.answer("POST", TOKEN, 201, {"access_token": "fresh"})
    airflow_api.answer("GET", "/api/v2/dags", 401, {"detail": "token expired"})
    airflow_api.answer("GET", "/api/v2/dags", 200, {"dags": []})

    answer = get(AirflowLogin(airflow_api.url, "agent", "pw"), airflow_api.url)

    assert answer.status_code == 200
    sent = [r.headers["Authorization"] for r in airflow_api.to("GET", "/api/v2/dags")]
    assert sent == ["Bearer expired", "Bearer fresh"]


def test_a_second_401_is_the_callers_answer_not_a_loop(airflow_api):
    airflow_api.answer("POST", TOKEN, 201, {"access_token": "t"})
    airflow_api.answer("GET", "/api/v2/dags", 401, {"detail": "no"})

    assert get(AirflowLogin(airflow_api.url, "agent", "pw"), airflow_api.url).status_code == 401
    assert len(airflow_api.to("GET", "/api/v2/dags")) == 2
    assert len(airflow_api.to("POST", TOKEN)) == 2


def test_threads_refused_with_the_same_token_log_in_once_again(airflow_api):
    airflow_api.answer("POST", TOKEN, 201, {"access_token": "expired"})
    airflow_api.answer("POST", TOKEN, 201, {"access_token": "fresh"})
    login = AirflowLogin(airflow_api.url, "agent", "pw")
    stale = login.token()
    threads = [threading.Thread(target=login._renew, args=(stale,)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert login.token() == "fresh"
    assert len(airflow_api.to("POST", TOKEN)) == 2


def test_a_refused_login_raises_with_airflows_answer_and_sends_no_call(airflow_api):
    airflow_api.answer("POST", TOKEN, 401, {"detail": "Invalid credentials"})

    with pytest.raises(ApiError) as refused:
        get(AirflowLogin(airflow_api.url, "agent", "wrong"), airflow_api.url)

    assert (refused.value.status, refused.value.body) == (401, {"detail": "Invalid credentials"})
    assert airflow_api.to("GET", "/api/v2/dags") == []
