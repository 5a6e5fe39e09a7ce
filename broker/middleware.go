package broker

import "github.com/tracebus/tracebus/broker/driver"

func chainPublish(mws []driver.Middleware, last driver.PublishFunc) driver.PublishFunc {
	for i := len(mws) - 1; i >= 0; i-- {
		last = mws[i].WrapPublish(last)
	}
	return last
}

func chainConsume(mws []driver.Middleware, last driver.ConsumeFunc) driver.ConsumeFunc {
	for i := len(mws) - 1; i >= 0; i-- {
		last = mws[i].WrapConsume(last)
	}
	return last
}

func chainSettle(mws []driver.Middleware, last driver.SettleFunc) driver.SettleFunc {
	for i := len(mws) - 1; i >= 0; i-- {
		if s, ok := mws[i].(driver.SettleMiddleware); ok {
			last = s.WrapSettle(last)
		}
	}
	return last
}
