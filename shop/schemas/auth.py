from ninja import Field

from core.schemas import BodyIn, TokenPairOut


class WechatLoginIn(BodyIn):
    code: str = Field(..., min_length=1, max_length=128, description="The code from wx.login()")


class WechatLoginOut(TokenPairOut):
    customer_id: int
    created: bool
