from ninja import Field, Schema

from core.schemas import TokenPairOut


class WechatLoginIn(Schema):
    code: str = Field(..., min_length=1, max_length=128, description="The code from wx.login()")


class WechatLoginOut(TokenPairOut):
    customer_id: int
    created: bool
