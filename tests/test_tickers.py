from finpulse.pipeline.enrich.tickers import extract_cashtags, merge_tickers


def test_cashtags_are_tickers_and_money_is_not():
    assert extract_cashtags("Bought $AAPL and $brk.b; $TSLA. Paid $5 for $1.2bn of $$AMD") == ["AAPL", "BRK.B", "TSLA"]


def test_merge_keeps_first_seen_order_without_duplicates():
    assert merge_tickers(["aapl", "$MSFT"], ["AAPL", "NVDA", " "]) == ["AAPL", "MSFT", "NVDA"]
