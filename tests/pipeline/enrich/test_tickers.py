from finpulse.pipeline.enrich.tickers import extract_cashtags, extract_rics, merge_tickers


def test_cashtags_are_tickers_and_money_is_not():
    assert extract_cashtags("Bought $AAPL and $brk.b; $TSLA. Paid $5 for $1.2bn of $$AMD") == ["AAPL", "BRK.B", "TSLA"]


def test_a_dollar_inside_a_word_is_a_stylised_letter_not_a_cashtag():
    for text in ["A$AP Rocky - L$D", "RT @fan: L$D by A$AP Rocky", "Ke$ha", "L-$D", "US$5bn", "L＄D", "£$D$"]:
        assert extract_cashtags(text) == [], text


def test_short_cashtags_need_capitals_and_real_ones_still_count():
    assert extract_cashtags("$d $ko $D ($F) #$T $KO") == ["D", "F", "T", "KO"]


def test_reuters_codes_of_us_listings_are_tickers():
    assert extract_rics("Meta <META.O>, J&J <JNJ.N>, Senior <SNR.L>, STM <STM.BN>") == ["META", "JNJ"]


def test_merge_keeps_first_seen_order_without_duplicates():
    assert merge_tickers(["aapl", "$MSFT"], ["AAPL", "NVDA", " "]) == ["AAPL", "MSFT", "NVDA"]
