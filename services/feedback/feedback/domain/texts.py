"""Survey texts, in Chinese and English, chosen by the ticket's language."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_LANGUAGE = "en"


@dataclass(frozen=True)
class SurveyTexts:
    lang: str  # BCP 47 tag for the page's lang attribute
    title: str
    intro: str
    reminder_intro: str
    csat: str
    csat_low: str
    csat_high: str
    nps: str
    nps_low: str
    nps_high: str
    solved: str
    yes: str
    no: str
    comment: str
    submit: str
    thanks: str
    updated: str
    message: str  # the text an integration sends with the link


TEXTS: dict[str, SurveyTexts] = {
    "en": SurveyTexts(
        lang="en",
        title="How did we do?",
        intro="Your request has been resolved. Please tell us how it went — it takes a minute.",
        reminder_intro="A quick reminder: we would still love to hear how we did.",
        csat="How satisfied are you with the support you received?",
        csat_low="Very dissatisfied",
        csat_high="Very satisfied",
        nps="How likely are you to recommend us to a friend or colleague?",
        nps_low="Not at all likely",
        nps_high="Extremely likely",
        solved="Was your issue solved the first time you contacted us?",
        yes="Yes",
        no="No",
        comment="Anything else you would like to tell us?",
        submit="Send",
        thanks="Thank you for your feedback.",
        updated="Thank you — your answer has been updated.",
        message="Your request has been resolved. How did we do? {url}",
    ),
    "zh": SurveyTexts(
        lang="zh",
        title="您对我们的服务满意吗？",
        intro="您的问题已处理完毕。请花一分钟告诉我们您的感受。",
        reminder_intro="温馨提醒：我们仍然很想听听您的意见。",
        csat="您对本次服务的满意度如何？",
        csat_low="非常不满意",
        csat_high="非常满意",
        nps="您有多大可能向朋友或同事推荐我们？",
        nps_low="完全不可能",
        nps_high="非常可能",
        solved="您的问题是否在第一次联系时就得到了解决？",
        yes="是",
        no="否",
        comment="您还有什么想告诉我们的吗？",
        submit="提交",
        thanks="感谢您的反馈。",
        updated="谢谢，您的回答已更新。",
        message="您的问题已处理完毕，请评价我们的服务：{url}",
    ),
}


def survey_language(ticket_language: str | None) -> str:
    """zh, zh-CN, zh-Hant, cmn... → zh; anything else, or unknown → en."""
    if not ticket_language:
        return DEFAULT_LANGUAGE
    primary = ticket_language.strip().replace("_", "-").split("-")[0].lower()
    if primary in ("zh", "cmn", "yue", "chi", "zho"):
        return "zh"
    return primary if primary in TEXTS else DEFAULT_LANGUAGE


def texts_for(language: str | None) -> SurveyTexts:
    return TEXTS[survey_language(language)]
